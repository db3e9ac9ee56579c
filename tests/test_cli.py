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
