"""The `meeting-elt` CLI: run, check and demo, as a user calls them."""

from __future__ import annotations

import duckdb
import pytest
from click.testing import CliRunner

from pipelines import registry
from pipelines.cli import main
from simulators.meetric_partner import MeetricPartnerSimulator


@pytest.fixture
def sim(start_sim) -> MeetricPartnerSimulator:
    return start_sim(MeetricPartnerSimulator, conversations=30, seed=2, requests_per_minute=None,
                     daily_quota=None)


def env_for(sim: MeetricPartnerSimulator, token: str | None = None) -> dict[str, str]:
    return {"SOURCES__MEETRIC_PARTNER__BASE_URL": sim.base_url,
            "SOURCES__MEETRIC_PARTNER__API_TOKEN": token or sim.token,
            "SOURCES__MEETRIC_PARTNER__HTTP__REQUESTS_PER_MINUTE": "0"}


def test_run_prints_a_summary_of_tables_rows_and_requests(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "meetric_partner", "--pipelines-dir", str(tmp_path / "p")],
                                env=env_for(sim))
    assert result.exit_code == 0, result.output
    assert "meetric_partner ok" in result.output
    assert "transcript_segments" in result.output and "requests" in result.output
    with duckdb.connect(str(tmp_path / "meetings.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from meetric_partner.conversations").fetchone()[0] > 0
    again = CliRunner().invoke(main, ["run", "meetric_partner", "--pipelines-dir", str(tmp_path / "p")],
                               env=env_for(sim))
    assert again.exit_code == 0 and "nothing new to load" in again.output


def test_run_without_a_token_says_which_key_to_set(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = env_for(sim)
    env["SOURCES__MEETRIC_PARTNER__API_TOKEN"] = ""
    result = CliRunner().invoke(main, ["run", "meetric_partner", "--pipelines-dir", str(tmp_path / "p")],
                                env=env)
    assert result.exit_code == 1
    assert "api_token" in result.output and "SOURCES__MEETRIC_PARTNER__API_TOKEN" in result.output


def test_run_rejects_an_unknown_source():
    result = CliRunner().invoke(main, ["run", "meetrik"])
    assert result.exit_code == 2 and "unknown source 'meetrik'" in result.output


def test_check_lists_the_tables_a_token_allows(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    token = sim.add_token(scopes={"conversations", "users"})
    result = CliRunner().invoke(main, ["check", "meetric_partner"], env=env_for(sim, token))
    assert result.exit_code == 0, result.output
    assert "credentials ok" in result.output
    assert "transcript_segments" in result.output and "'transcripts' scope" in result.output


def test_check_with_a_wrong_token_fails_without_showing_it(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["check", "meetric_partner"], env=env_for(sim, "mt_nope_nope_nope_1234"))
    assert result.exit_code == 1
    assert "authentication failed" in result.output and "mt_nope_nope_nope_1234" not in result.output


def test_demo_loads_every_source_into_duckdb(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["demo", "--duckdb-file", str(tmp_path / "demo.duckdb")])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True) as con:
        schemas = {r[0] for r in con.execute("select distinct schema_name from duckdb_tables()").fetchall()}
        assert set(registry.SOURCES) <= schemas
        assert con.execute("select count(*) from meetric_partner.transcript_segments").fetchone()[0] > 0
        # and the meetings model over all five
        sources = {r[0] for r in con.execute("select distinct source from meetings.meetings").fetchall()}
        assert sources == set(registry.SOURCES)
    assert "meetings model" in result.output


def test_a_mistyped_config_key_is_refused_with_the_key_it_meant(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**env_for(sim), "SOURCES__MEETRIC_PARTNER__SWEEP_INTERVAL_HOUR": "0",
           "SOURCES__MEETRIC_PARTNER__HTTP__MAX_RETRYS": "2"}
    result = CliRunner().invoke(main, ["run", "meetric_partner", "--pipelines-dir", str(tmp_path / "p")], env=env)
    assert result.exit_code == 1
    assert "did you mean 'sweep_interval_hours'" in result.output
    assert "did you mean 'http.max_retries'" in result.output
    assert sim.log == []  # refused before any request


def _memory_limit_of(path, tmp_path) -> str:
    """DuckDB's memory_limit on a connection the product's DuckDB destination opens."""
    from pipelines.runner import make_destination, make_pipeline

    pipeline = make_pipeline("limits", destination=make_destination("duckdb", str(path)),
                             pipelines_dir=str(tmp_path / "p"))
    with pipeline.sql_client() as client:
        return client.execute_sql("select current_setting('memory_limit')")[0][0]


def _duckdb_shows(size: str) -> str:
    with duckdb.connect() as con:
        con.execute(f"set memory_limit = '{size}'")
        return con.execute("select current_setting('memory_limit')").fetchone()[0]


def test_duckdb_loads_run_with_a_memory_limit_the_env_var_sets_or_turns_off(sim, tmp_path, monkeypatch):
    from pipelines.runner import DEFAULT_DUCKDB_MEMORY_LIMIT, destination_identity, make_destination

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEETING_ELT_DUCKDB_MEMORY_LIMIT", raising=False)
    result = CliRunner().invoke(main, ["run", "meetric_partner", "--pipelines-dir", str(tmp_path / "p")],
                                env=env_for(sim))
    assert result.exit_code == 0, result.output
    path = tmp_path / "meetings.duckdb"
    assert _memory_limit_of(path, tmp_path) == _duckdb_shows(DEFAULT_DUCKDB_MEMORY_LIMIT)
    monkeypatch.setenv("MEETING_ELT_DUCKDB_MEMORY_LIMIT", "512MB")
    assert _memory_limit_of(path, tmp_path) == _duckdb_shows("512MB")
    monkeypatch.setenv("MEETING_ELT_DUCKDB_MEMORY_LIMIT", "off")
    assert _memory_limit_of(path, tmp_path) not in (_duckdb_shows("512MB"), _duckdb_shows(DEFAULT_DUCKDB_MEMORY_LIMIT))
    # the limit does not change which state folder the pipeline keeps (its destination identity)
    monkeypatch.delenv("MEETING_ELT_DUCKDB_MEMORY_LIMIT")
    import dlt

    assert destination_identity(make_destination("duckdb", str(path))) == \
        destination_identity(dlt.destinations.duckdb(str(path)))


def test_a_bad_duckdb_memory_limit_is_refused_before_any_source_runs(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["run", "meetric_partner", "--pipelines-dir", str(tmp_path / "p")],
                                env={**env_for(sim), "MEETING_ELT_DUCKDB_MEMORY_LIMIT": "lots"})
    assert result.exit_code == 1
    assert "MEETING_ELT_DUCKDB_MEMORY_LIMIT='lots'" in result.output and "512MB" in result.output
    assert not sim.log  # no source ran
    assert not (tmp_path / "meetings.duckdb").exists()


def test_a_duckdb_load_out_of_memory_says_which_setting_to_raise_and_the_next_run_loads_it(
        sim, tmp_path, monkeypatch):
    from pipelines.runner import make_destination, make_pipeline
    from tests.partner_helpers import expected, loaded

    monkeypatch.chdir(tmp_path)
    args = ["run", "meetric_partner", "--pipelines-dir", str(tmp_path / "p")]
    starved = CliRunner().invoke(main, args, env={**env_for(sim), "MEETING_ELT_DUCKDB_MEMORY_LIMIT": "1MB",
                                                  "LOAD__RAISE_ON_MAX_RETRIES": "1"})
    assert starved.exit_code == 1, starved.output
    assert "DuckDB ran out of memory" in starved.output and "MEETING_ELT_DUCKDB_MEMORY_LIMIT" in starved.output
    fetched = len(sim.log)
    # the next run loads the package the starved one left, then runs the source as usual
    again = CliRunner().invoke(main, args, env=env_for(sim))
    assert again.exit_code == 0, again.output
    assert "loaded first what an earlier run fetched but did not finish loading" in again.output
    assert 0 < len(sim.log) - fetched < fetched  # its own listing, not the fetch again
    pipeline = make_pipeline("meetric_partner", destination=make_destination("duckdb", str(tmp_path / "meetings.duckdb")),
                             pipelines_dir=str(tmp_path / "p"))
    assert loaded(pipeline) == expected(sim)
