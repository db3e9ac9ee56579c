"""Running it in production: separate state per destination and dataset, reset, --tables,
--json, overlapping runs, several sources with one dataset option, quiet cron logs."""

from __future__ import annotations

import json
import logging

import duckdb
import pytest
from click.testing import CliRunner

from pipelines.cli import EXIT_BUSY, main
from pipelines.runner import exclusive, make_destination, make_pipeline
from simulators.meetric_partner import MeetricPartnerSimulator


@pytest.fixture
def sim(start_sim) -> MeetricPartnerSimulator:
    return start_sim(MeetricPartnerSimulator, conversations=24, seed=7, requests_per_minute=None,
                     daily_quota=None, processing_share=0)


def env_for(sim: MeetricPartnerSimulator) -> dict[str, str]:
    return {"SOURCES__MEETRIC_PARTNER__BASE_URL": sim.base_url,
            "SOURCES__MEETRIC_PARTNER__API_TOKEN": sim.token,
            "SOURCES__MEETRIC_PARTNER__HTTP__REQUESTS_PER_MINUTE": "0",
            "SOURCES__MEETRIC_PARTNER__SWEEP_INTERVAL_HOURS": "0"}


def cli(sim, tmp_path, *args: str, env: dict | None = None):
    return CliRunner().invoke(main, [*args, "--pipelines-dir", str(tmp_path / "p")],
                              env={**env_for(sim), **(env or {})}, catch_exceptions=False)


def count(path, sql: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchone()[0]


def test_switching_destinations_never_makes_one_of_them_skip_data(sim, tmp_path, monkeypatch):
    """DuckDB A -> DuckDB B -> (3 new) -> B -> A: A gets the 3 (they share no state)."""
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    assert cli(sim, tmp_path, "run", "meetric_partner", "--duckdb-file", str(a)).exit_code == 0
    assert cli(sim, tmp_path, "run", "meetric_partner", "--duckdb-file", str(b)).exit_code == 0
    new = [sim.add_conversation(status="completed").id for _ in range(3)]
    assert cli(sim, tmp_path, "run", "meetric_partner", "--duckdb-file", str(b)).exit_code == 0
    again = cli(sim, tmp_path, "run", "meetric_partner", "--duckdb-file", str(a))
    assert again.exit_code == 0 and "nothing new to load" not in again.output
    ids = ", ".join(f"'{i}'" for i in new)
    for db in (a, b):
        assert count(db, f"select count(*) from meetric_partner.conversations where id in ({ids})") == 3
        assert count(db, f"select count(*) from meetric_partner.summaries where conversation_id in ({ids})") == 3


def test_two_datasets_in_one_destination_keep_separate_state(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(sim, tmp_path, "run", "meetric_partner", "--dataset", "one").exit_code == 0
    sim.add_conversation(status="completed")
    assert cli(sim, tmp_path, "run", "meetric_partner", "--dataset", "one").exit_code == 0
    assert cli(sim, tmp_path, "run", "meetric_partner", "--dataset", "two").exit_code == 0
    db = tmp_path / "meetings.duckdb"
    assert count(db, "select count(*) from one.conversations") == count(db, "select count(*) from two.conversations")
    assert count(db, "select count(*) from two.summaries") == count(db, "select count(*) from one.summaries") > 0


def test_a_fresh_worker_restores_state_from_the_destination_and_stays_incremental(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(sim, tmp_path, "run", "meetric_partner").exit_code == 0
    sim.clear_log()
    fresh = CliRunner().invoke(main, ["run", "meetric_partner", "--pipelines-dir", str(tmp_path / "empty")],
                               env=env_for(sim), catch_exceptions=False)
    assert fresh.exit_code == 0 and "nothing new to load" in fresh.output
    assert not sim.requests("GET", r"/conversations/[^/]+$")  # no detail call: the state came back


def test_reset_drops_the_sources_tables_and_state_and_the_next_run_loads_it_all(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(sim, tmp_path, "run", "meetric_partner").exit_code == 0
    db = tmp_path / "meetings.duckdb"
    summaries = count(db, "select count(*) from meetric_partner.summaries")
    refused = cli(sim, tmp_path, "reset", "meetric_partner")  # no terminal, no --yes: not confirmed
    assert refused.exit_code == 2 and "--yes" in refused.output
    done = cli(sim, tmp_path, "reset", "meetric_partner", "--yes")
    assert done.exit_code == 0, done.output
    with duckdb.connect(str(db), read_only=True) as con:
        left = con.execute("select count(*) from duckdb_tables() where schema_name = 'meetric_partner' "
                           "and table_name not like '_dlt%'").fetchone()[0]
    assert left == 0
    sim.clear_log()
    assert cli(sim, tmp_path, "run", "meetric_partner").exit_code == 0
    assert count(db, "select count(*) from meetric_partner.summaries") == summaries
    assert len(sim.requests("GET", r"/conversations/[^/]+$")) == summaries  # everything fetched again


def test_reset_of_one_table_refetches_what_feeds_it_and_leaves_the_others(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(sim, tmp_path, "run", "meetric_partner").exit_code == 0
    db = tmp_path / "meetings.duckdb"
    segments = count(db, "select count(*) from meetric_partner.transcript_segments")
    users = count(db, "select count(*) from meetric_partner.users")
    done = cli(sim, tmp_path, "reset", "meetric_partner", "--tables", "transcript_segments", "--yes")
    assert done.exit_code == 0, done.output
    assert "transcript_segments" in done.output and "conversations" in done.output  # the entity's state
    assert count(db, "select count(*) from meetric_partner.users") == users
    assert cli(sim, tmp_path, "run", "meetric_partner").exit_code == 0
    assert count(db, "select count(*) from meetric_partner.transcript_segments") == segments


def test_run_with_tables_loads_only_those(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli(sim, tmp_path, "run", "meetric_partner", "--tables", "users,summaries")
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(tmp_path / "meetings.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables() where "
                                            "schema_name = 'meetric_partner' and table_name not like '_dlt%'").fetchall()}
    assert tables == {"users", "users__team_ids", "summaries"}  # users with its child table
    unknown = cli(sim, tmp_path, "run", "meetric_partner", "--tables", "summary")
    assert unknown.exit_code == 1 and "no table 'summary'" in unknown.output and "summaries" in unknown.output


def test_json_summary_is_one_document_on_stdout(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["run", "meetric_partner", "--json", "--pipelines-dir", str(tmp_path / "p")], env=env_for(sim))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    [source] = doc["sources"]
    assert doc["ok"] is True and source["source"] == "meetric_partner" and source["ok"] is True
    assert source["rows"]["summaries"] == count(tmp_path / "meetings.duckdb",
                                                "select count(*) from meetric_partner.summaries")
    assert source["requests"] > 0 and source["dataset"] == "meetric_partner"
    assert {"skipped", "waiting", "warnings", "bad_records", "error", "seconds"} <= set(source)
    assert source["marked_deleted"] == {}
    # two conversations deleted at the vendor: marked inside the run, and counted in the summary
    gone = [c.id for c in list(sim.conversations.values())[:2]]
    for conversation_id in gone:
        sim.delete(conversation_id)
    again = CliRunner().invoke(
        main, ["run", "meetric_partner", "--json", "--pipelines-dir", str(tmp_path / "p")], env=env_for(sim))
    [source] = json.loads(again.stdout)["sources"]
    assert source["marked_deleted"] == {"conversations": 2}
    assert count(tmp_path / "meetings.duckdb",
                 "select count(*) from meetric_partner.conversations where deleted_at is not null") == 2


def test_an_overlapping_run_of_the_same_pipeline_exits_at_once_without_loading(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pipeline = make_pipeline("meetric_partner", destination=make_destination("duckdb", "meetings.duckdb"),
                             pipelines_dir=str(tmp_path / "p"))
    with exclusive(pipeline):
        result = cli(sim, tmp_path, "run", "meetric_partner")
    assert result.exit_code == EXIT_BUSY
    assert "is loading" in result.output and "pid" in result.output
    assert sim.log == []  # not a single request
    assert cli(sim, tmp_path, "run", "meetric_partner").exit_code == 0  # the lock is released after


def test_one_dataset_for_several_sources_is_refused_and_a_prefix_is_offered(sim, tmp_path):
    result = cli(sim, tmp_path, "run", "meetric_partner", "convo", "--dataset", "x")
    assert result.exit_code == 2 and "--dataset-prefix" in result.output


def test_dataset_prefix_loads_each_source_into_its_own_dataset(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli(sim, tmp_path, "run", "meetric_partner", "--dataset-prefix", "crm")
    assert result.exit_code == 0, result.output
    assert count(tmp_path / "meetings.duckdb", "select count(*) from crm_meetric_partner.conversations") > 0


def test_cron_logs_carry_each_note_once(sim, tmp_path, monkeypatch, caplog):
    """The summary prints the run's notes; dlt's logger must not repeat them."""
    monkeypatch.chdir(tmp_path)
    token = sim.add_token(scopes={"conversations", "users", "teams", "departments"})  # no transcripts
    with caplog.at_level(logging.INFO):
        result = cli(sim, tmp_path, "run", "meetric_partner",
                     env={"SOURCES__MEETRIC_PARTNER__API_TOKEN": token})
    assert result.exit_code == 0 and "skipped" in result.output and "transcripts" in result.output
    assert not [r for r in caplog.records if "skipping table" in r.getMessage()]


def test_a_postgres_run_logs_no_warning_per_table(sim, tmp_path, monkeypatch, postgres_credentials):
    """Without the ADBC driver dlt cannot load parquet into Postgres and warned once per
    table (twice, in fact): the runner asks for parquet only where it can be loaded."""
    monkeypatch.chdir(tmp_path)
    result = cli(sim, tmp_path, "run", "meetric_partner", "--destination", "postgres",
                 env={"DESTINATION__POSTGRES__CREDENTIALS": postgres_credentials})
    assert result.exit_code == 0, result.output
    assert "transcript_segments" in result.output
    assert "WARNING" not in result.output, result.output  # dlt's logger writes to stderr, in `output`
