"""Faults, crashes and secrets: the partner source converges and never leaks its token."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import dlt
import pytest

from simulators.base import Faults
from simulators.meetric_partner import MeetricPartnerSimulator
from sources.meetric_partner import meetric_partner

from .partner_helpers import expected, loaded, partner_kwargs, row_lists
from .utils import grep_tree, make_pipeline, run_strict

LIMITS_OFF = {"requests_per_minute": None, "daily_quota": None}


@pytest.fixture
def sim(start_sim) -> MeetricPartnerSimulator:
    return start_sim(MeetricPartnerSimulator, conversations=80, seed=21, **LIMITS_OFF)


def assert_no_duplicates(pipeline: dlt.Pipeline) -> None:
    for table, key in (("transcript_segments", "meeting_id, segment_index"), ("insights", "id"),
                       ("conversations", "id"), ("summaries", "conversation_id")):
        keys = row_lists(pipeline, table, key)
        assert len(keys) == len(set(keys)), table


def test_injected_faults_leave_the_tables_equal_to_a_clean_run(sim, tmp_path):
    clean = make_pipeline(tmp_path, "clean")
    run_strict(clean, meetric_partner(**partner_kwargs(sim)))
    sim.faults = Faults(error_5xx=0.10, rate_429=0.05, drop=0.02, truncate=0.02, seed=5)
    sim.clear_log()
    faulty = make_pipeline(tmp_path, "faulty")
    run_strict(faulty, meetric_partner(**partner_kwargs(sim)))
    faults = {r.fault for r in sim.log if r.fault}
    assert faults == {"5xx", "429", "drop", "truncate"}
    assert loaded(faulty) == loaded(clean) == expected(sim)
    assert_no_duplicates(faulty)


def cli(tmp_path, sim: MeetricPartnerSimulator, token: str, *extra_env: tuple[str, str]) -> subprocess.Popen:
    env = {**os.environ,
           "SOURCES__MEETRIC_PARTNER__BASE_URL": sim.base_url,
           "SOURCES__MEETRIC_PARTNER__API_TOKEN": token,
           "SOURCES__MEETRIC_PARTNER__PAGE_SIZE": "10",
           "SOURCES__MEETRIC_PARTNER__HTTP__REQUESTS_PER_MINUTE": "0",
           "SOURCES__MEETRIC_PARTNER__HTTP__BACKOFF_INITIAL_SECONDS": "0.01",
           "RUNTIME__LOG_LEVEL": "DEBUG", **dict(extra_env)}
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "meetric_partner",
         "--duckdb-file", str(tmp_path / "warehouse.duckdb"), "--pipelines-dir", str(tmp_path / "pipelines")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def attach(tmp_path) -> dlt.Pipeline:
    """The pipeline the CLI ran (its working folder is the one the CLI derives)."""
    from pipelines.runner import make_pipeline as cli_pipeline

    return cli_pipeline("meetric_partner", destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
                        pipelines_dir=str(tmp_path / "pipelines"))


@pytest.mark.parametrize("kill_after_requests", [12, 45, "fetched"])
def test_kill_9_mid_run_then_the_next_run_converges(sim, tmp_path, kill_after_requests):
    clean = make_pipeline(tmp_path, "clean")
    run_strict(clean, meetric_partner(**partner_kwargs(sim)))
    total = len(sim.log)
    sim.clear_log()
    sim.faults = Faults(slow=1.0, slow_seconds=0.01)  # stretch the run so the kill lands inside it
    proc = cli(tmp_path, sim, sim.token)
    target = total if kill_after_requests == "fetched" else kill_after_requests
    deadline = time.monotonic() + 60
    while len(sim.log) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if kill_after_requests == "fetched":
        time.sleep(0.15)  # into normalize / load
    proc.kill()
    assert proc.wait() == -9, "the run finished before the kill: the test proved nothing"
    sim.faults = Faults()
    finish = cli(tmp_path, sim, sim.token)
    out, err = finish.communicate(timeout=120)
    assert finish.returncode == 0, out + err
    pipeline = attach(tmp_path)
    assert loaded(pipeline) == loaded(clean) == expected(sim)
    assert_no_duplicates(pipeline)


def test_wrong_token_exits_non_zero_with_a_clear_message_and_leaks_nothing(sim, tmp_path):
    wrong = "mt_wrongwrongwrong_0123456789"
    proc = cli(tmp_path, sim, wrong)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "authentication failed" in out and "api_token" in out.lower() or "secrets.toml" in out
    assert wrong not in out + err
    assert grep_tree(tmp_path, wrong) == []


def test_token_appears_in_no_output_log_table_or_state(sim, tmp_path):
    sim.faults = Faults(error_5xx=0.1, seed=1)  # errors get logged too
    proc = cli(tmp_path, sim, sim.token)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "debug" in err.lower() or len(err) > 0  # debug logging was really on
    assert sim.token not in out + err
    assert grep_tree(tmp_path, sim.token) == []
    assert grep_tree(tmp_path, sim.token[3:]) == []  # not even without its prefix
    pipeline = attach(tmp_path)
    assert sim.token not in str(pipeline.state)
