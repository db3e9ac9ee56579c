"""meetlog: several tokens (spreading, pacing, scopes), bad tokens, `check`, secrets."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from pipelines.runner import explain
from simulators.meetlog import ALL_SCOPES, MeetlogSimulator
from sources._common.errors import AuthError, ConfigError
from sources._common.report import RunReport, get_report
from sources._common.token_pool import parse_tokens
from sources.meetlog import check, meetlog
from tests.test_meetlog import FAST, assert_matches_sim, pipeline_for
from tests.utils import grep_tree, rows, run_strict

# the simulator allows 300 requests a minute per token, counted in a 4-second sliding
# window (20 per 4 s); the client paces each token to 240 a minute after a burst of 3,
# so at most 3 + 16 = 19 of its requests fall in any 4 seconds
SIM_RATE = {"requests_per_minute": 300, "rate_window_seconds": 4.0}
PACED = {"requests_per_minute": 240, "concurrency": 4, "backoff_initial_seconds": 0.01,
         "backoff_max_seconds": 0.05}


def run_source(name: str, *, pipeline, **kw) -> tuple[bool, str | None, RunReport]:
    """Like the CLI's runner (which knows meetlog once it is registered): never raises."""
    try:
        pipeline.run(meetlog(**kw)).raise_on_failed_jobs()
        error = None
    except Exception as exc:
        error = explain(exc)
    return error is None, error, get_report(name)


def test_api_token_accepts_a_list_a_json_list_or_a_comma_separated_string():
    assert parse_tokens("tk_live_a1b2c3", "api_token", "meetlog") == ["tk_live_a1b2c3"]
    assert parse_tokens(" tk_live_a1b2c3, tk_live_d4e5f6 ,", "api_token", "meetlog") == [
        "tk_live_a1b2c3", "tk_live_d4e5f6"]
    assert parse_tokens('["tk_live_a1b2c3", "tk_live_d4e5f6"]', "api_token", "meetlog") == [
        "tk_live_a1b2c3", "tk_live_d4e5f6"]
    assert parse_tokens(["tk_live_a1b2c3", "tk_live_a1b2c3"], "api_token", "meetlog") == ["tk_live_a1b2c3"]
    for empty in ("", " , ", [], None):
        with pytest.raises(ConfigError, match="SOURCES__MEETLOG__API_TOKEN"):
            parse_tokens(empty, "api_token", "meetlog")


def test_tokens_from_an_env_var_are_all_used(tmp_path, start_sim, monkeypatch):
    sim = start_sim(MeetlogSimulator, transcripts=12, requests_per_minute=None)
    second = sim.add_token()
    monkeypatch.setenv("SOURCES__MEETLOG__API_TOKEN", f"{sim.token}, {second}")
    pipeline = pipeline_for(tmp_path)
    run_strict(pipeline, meetlog(base_url=sim.base_url, page_size=4, http=FAST))
    assert_matches_sim(pipeline, sim)
    assert sim.requests_by_token[sim.token] > 5 and sim.requests_by_token[second] > 5


def backfill_seconds(tmp_path, sim: MeetlogSimulator, tokens: list[str], name: str) -> float:
    pipeline = pipeline_for(tmp_path, name)
    started = time.perf_counter()
    pipeline.extract(meetlog(api_token=tokens, base_url=sim.base_url, page_size=8, http=PACED))
    return time.perf_counter() - started


def test_three_tokens_backfill_three_times_as_fast_within_the_limits(tmp_path, start_sim):
    kw = {"transcripts": 16, "processing": 0, "failed_share": 0, "projects": 1,
          "reports_per_transcript": (0, 0), **SIM_RATE}
    one, three = start_sim(MeetlogSimulator, **kw), start_sim(MeetlogSimulator, **kw)
    tokens = [three.token, three.add_token(), three.add_token()]
    # the limit is real: an unpaced burst on one token is refused
    with httpx.Client(headers={"Authorization": f"Bearer {one.add_token()}"}) as client:
        statuses = [client.get(f"{one.base_url}/api/v1/export/projects").status_code for _ in range(22)]
    assert 429 in statuses
    one.clear_log()
    slow = backfill_seconds(tmp_path, one, [one.token], "one")
    fast = backfill_seconds(tmp_path, three, tokens, "three")
    requests = len(three.log)
    assert requests == len(one.log) == 21  # 2 + 16 transcripts, 1 reports, 1 + 1 project
    assert one.status_counts().get(429, 0) == 0 and three.status_counts().get(429, 0) == 0
    # one token: a burst of 3, then 18 gaps of 0.25 s; three tokens share them
    assert slow >= 18 * 0.25 * 0.95
    # the pacing makes 3x the expected figure (3.65 on a quiet machine: each token's burst);
    # the margin is for a busy CI machine, where processing time eats into the paced gaps
    assert slow / fast >= 2.0, (slow, fast)
    assert sorted(three.requests_by_token[t] for t in tokens) == [7, 7, 7]
    print(f"\nbackfill of {requests} requests: 1 token {slow:.2f}s, 3 tokens {fast:.2f}s, "
          f"ratio {slow / fast:.2f}, 429s: 0")


def test_a_token_lacking_a_scope_is_left_out_of_that_scope(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=12, requests_per_minute=None)
    partial = sim.add_token(ALL_SCOPES - {"export:reports"})
    pipeline = pipeline_for(tmp_path)
    run_strict(pipeline, meetlog(api_token=[partial, sim.token], base_url=sim.base_url, page_size=4, http=FAST))
    assert_matches_sim(pipeline, sim)
    assert sim.status_counts()[403] == 1  # asked once, then never again for reports
    assert not get_report("meetlog").skipped


def test_a_missing_scope_skips_only_that_table(tmp_path, start_sim, caplog):
    sim = start_sim(MeetlogSimulator, transcripts=12, requests_per_minute=None)
    token = sim.add_token(ALL_SCOPES - {"export:reports"})
    pipeline = pipeline_for(tmp_path)
    ok, error, report = run_source("meetlog", pipeline=pipeline, api_token=token, base_url=sim.base_url,
                                   page_size=4, http=FAST)
    assert ok, error
    assert set(report.skipped) == {"reports"}
    assert "export:reports" in report.skipped["reports"]
    assert len(rows(pipeline, "transcripts")) == 12 and rows(pipeline, "project_transcripts")
    assert sum("export:reports" in m for m in caplog.messages) == 1


def test_a_bad_token_fails_at_once_with_a_clear_message(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=4, requests_per_minute=None)
    bad = "tk_live_" + "0" * 32
    ok, error, _ = run_source("meetlog", pipeline=pipeline_for(tmp_path), api_token=bad,
                              base_url=sim.base_url, http=FAST)
    assert not ok
    assert "refused the API token" in error and bad not in error
    assert len(sim.log) == 1


def test_check_lists_the_tables_each_scope_allows_and_names_a_refused_token(start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=4, requests_per_minute=None)
    projects_only = sim.add_token({"export:projects"})
    assert check([sim.token], base_url=sim.base_url, http=FAST) == dict.fromkeys(
        ["transcripts", "reports", "projects", "project_transcripts"])
    access = check(projects_only, base_url=sim.base_url, http=FAST)
    assert access["projects"] is None and access["project_transcripts"] is None
    assert "export:reports" in access["reports"] and "export:transcripts" in access["transcripts"]
    assert check(f"{projects_only},{sim.token}", base_url=sim.base_url, http=FAST)["reports"] is None
    with pytest.raises(AuthError, match="token 2 of 2") as info:
        check([sim.token, "tk_live_revoked00000"], base_url=sim.base_url, http=FAST)
    assert "tk_live_revoked00000" not in str(info.value)


def test_tokens_reach_no_log_table_or_file(tmp_path, start_sim, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    sim = start_sim(MeetlogSimulator, transcripts=8, requests_per_minute=None)
    tokens = [sim.token, sim.add_token(ALL_SCOPES - {"export:projects"})]
    pipeline = pipeline_for(tmp_path)
    run_strict(pipeline, meetlog(api_token=",".join(tokens), base_url=sim.base_url, page_size=3, http=FAST))
    sim.tokens.pop(tokens[1])  # revoked: the next run fails, and says so without the token
    ok, error, _ = run_source("meetlog", pipeline=pipeline, api_token=tokens, base_url=sim.base_url, http=FAST)
    assert not ok and "refused the API token" in error
    out = capsys.readouterr()
    for token in tokens:
        assert token not in caplog.text and token not in out.out + out.err
        assert token not in error
        assert not grep_tree(tmp_path, token)


def test_each_token_gets_a_burst_of_three_then_its_own_pace():
    from sources._common.pacing import Pacer

    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(60, burst=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.acquire()
    assert slept == [1.0, 1.0]  # 3 at once, then one a second: at most 3 + 60 in any minute
