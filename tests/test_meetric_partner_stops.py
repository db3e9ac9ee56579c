"""A spent request budget or a long Retry-After on a list call stops the run cleanly.

What was fetched loads, the state stays consistent (a cut listing marks no deletions and
is listed first by the next run), the summary says what waits, the run succeeds, and the
next runs converge to the clean run's tables without fetching any conversation twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest

from simulators.base import Faults
from simulators.meetric_partner import MeetricPartnerSimulator
from sources._common.timeutil import parse_instant

from .partner_helpers import (
    cursor_of,
    expected,
    ledger_of,
    loaded,
    marks_of,
    partner_kwargs,
    row_lists,
)
from .utils import make_pipeline, rows, run

LIMITS_OFF = {"requests_per_minute": None, "daily_quota": None}
DETAIL = r"/conversations/[^/]+$"
LIST = r"/conversations$"


@pytest.fixture
def sim(start_sim) -> MeetricPartnerSimulator:
    return start_sim(MeetricPartnerSimulator, conversations=60, seed=31, processing_share=0.1, **LIMITS_OFF)


def kwargs(sim: MeetricPartnerSimulator, **http) -> dict:
    """One request at a time, so that a budget lands on exactly the request it aims at."""
    out = partner_kwargs(sim)
    out["http"].update(concurrency=1, **http)
    return out


def request_paths(sim: MeetricPartnerSimulator) -> list[str]:
    return [r.path.rsplit("/rest/", 1)[1] for r in sim.log]


def budget_before(paths: list[str], where: str) -> int:
    """The number of requests a clean run sends before the one `where` names."""
    lists = [i for i, p in enumerate(paths) if p == "conversations"]
    details = [i for i, p in enumerate(paths) if p.startswith("conversations/")]
    return {"people lists": paths.index("teams"), "first list page": lists[0],
            "middle of the listing": lists[len(lists) // 2], "during details": details[4]}[where]


def details_fetched(sim: MeetricPartnerSimulator) -> Counter:
    return Counter(r.path for r in sim.requests("GET", DETAIL) if r.status == 200)


def assert_no_duplicates(pipeline) -> None:
    for table, key in (("transcript_segments", "meeting_id, segment_index"), ("insights", "id"),
                       ("conversations", "id"), ("summaries", "conversation_id")):
        keys = row_lists(pipeline, table, key)
        assert len(keys) == len(set(keys)), table


@pytest.mark.parametrize("where", ["first list page", "middle of the listing", "during details", "people lists"])
def test_a_budget_spent_at_any_point_stops_cleanly_and_the_next_run_converges(sim, tmp_path, where):
    clean = make_pipeline(tmp_path, "clean")
    assert run(clean, "meetric_partner", **kwargs(sim)).ok
    budget = budget_before(request_paths(sim), where)
    sim.clear_log()

    pipeline = make_pipeline(tmp_path, "cut")
    cut = run(pipeline, "meetric_partner", **kwargs(sim, max_requests=budget))
    assert cut.ok, cut.error
    assert len(sim.log) == budget  # the budget was really spent, and not overspent
    report = cut.report
    assert any("max_requests" in note for note in report.waiting.values())
    # the listing was cut (during details too: the next list page met the spent budget);
    # the cut stretch is remembered, no sweep is completed and nothing is marked deleted
    assert "conversations (list)" in report.waiting and cursor_of(pipeline)["unlisted"]["from"]
    assert "last_sweep_at" not in ledger_of(pipeline)
    assert not marks_of(pipeline, "conversations")
    # everything fetched loaded
    fetched = details_fetched(sim)
    if fetched:
        assert rows(pipeline, "summaries", "count(*) AS n") == [{"n": len(fetched)}]
    if "conversations" in pipeline.default_schema.tables:
        listed = loaded(pipeline, ["conversations"])["conversations"]
        assert listed and listed <= expected(sim)["conversations"]
    if where == "people lists":
        assert {"teams", "departments"} <= set(report.waiting)
        assert rows(pipeline, "users", "count(*) AS n") == [{"n": len(sim.users)}]

    finish = run(pipeline, "meetric_partner", **kwargs(sim))
    assert finish.ok, finish.error
    assert not finish.report.waiting or set(finish.report.waiting) == {"conversations"}  # processing ones
    assert loaded(pipeline) == loaded(clean) == expected(sim)
    assert_no_duplicates(pipeline)
    assert max(details_fetched(sim).values()) == 1  # no conversation's details fetched twice
    assert "unlisted" not in cursor_of(pipeline)


def test_the_same_tight_budget_run_after_run_still_converges(start_sim, tmp_path):
    sim = start_sim(MeetricPartnerSimulator, conversations=40, seed=32, processing_share=0, **LIMITS_OFF)
    clean = make_pipeline(tmp_path, "clean")
    assert run(clean, "meetric_partner", **kwargs(sim)).ok
    sim.clear_log()
    pipeline = make_pipeline(tmp_path, "tight")
    # the whole list is 15 pages of 2, more than one run's budget can read: each run must
    # continue where the last one was cut, not list from the top again
    tight = {**kwargs(sim, max_requests=14), "page_size": 2}
    runs = 0
    while True:
        runs += 1
        result = run(pipeline, "meetric_partner", **tight)
        assert result.ok, result.error
        if not result.report.waiting:
            break
        assert runs < 15, f"no convergence: {result.report.waiting}"
    assert runs > 3  # the budget really cut several runs short
    assert loaded(pipeline) == loaded(clean) == expected(sim)
    assert_no_duplicates(pipeline)
    assert max(details_fetched(sim).values()) == 1


def test_conversations_below_where_a_listing_was_cut_load_on_the_next_run(start_sim, tmp_path):
    sim = start_sim(MeetricPartnerSimulator, conversations=20, seed=33, processing_share=0, **LIMITS_OFF)
    pipeline = make_pipeline(tmp_path, "incremental")
    assert run(pipeline, "meetric_partner", **kwargs(sim)).ok  # a full load and a completed sweep
    for hours in range(1, 13):  # twelve new ones, spread wider than the 2-hour lookback
        sim.add_conversation(date=sim.now() - timedelta(hours=hours), status="completed")
    tight = {**kwargs(sim, max_requests=10), "page_size": 2}
    cut = run(pipeline, "meetric_partner", **tight)
    assert cut.ok, cut.error
    assert "conversations (list)" in cut.report.waiting
    unlisted = cursor_of(pipeline)["unlisted"]
    # the cursor moved to the newest conversation read, and what lies below it is remembered
    assert parse_instant(unlisted["to"]) < parse_instant(cursor_of(pipeline)["newest_date"])
    sim.clear_log()
    assert run(pipeline, "meetric_partner", **kwargs(sim)).ok  # not a sweep: the recent end only
    assert loaded(pipeline) == expected(sim)
    assert "unlisted" not in cursor_of(pipeline)


def test_a_sweep_cut_by_the_budget_marks_no_deletion_until_a_sweep_completes(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "sweep")
    assert run(pipeline, "meetric_partner", **kwargs(sim)).ok
    gone = sim.visible()[-3]  # an old one: only a sweep lists that far back
    sim.delete(gone.id)
    sim.clear_log()
    cut = run(pipeline, "meetric_partner", **kwargs(sim, max_requests=7), sweep_interval_hours=0)
    assert cut.ok, cut.error
    assert any("sweep was cut" in w for w in cut.report.warnings)
    assert rows(pipeline, "conversations", "count(*) AS n", where="deleted_at IS NOT NULL") == [{"n": 0}]
    done = run(pipeline, "meetric_partner", **kwargs(sim), sweep_interval_hours=0)
    assert done.ok, done.error
    done = run(pipeline, "meetric_partner", **kwargs(sim), sweep_interval_hours=0)  # the sweep, once all is listed
    assert [r["id"] for r in rows(pipeline, "conversations", "id", where="deleted_at IS NOT NULL")] == [gone.id]


def test_a_retry_after_longer_than_the_cap_on_list_calls_stops_cleanly(sim, tmp_path):
    clean = make_pipeline(tmp_path, "clean")
    assert run(clean, "meetric_partner", **kwargs(sim)).ok
    # the users list and the conversations list answer 429 with an hour's Retry-After
    sim.faults = Faults(rate_429=1.0, retry_after="3600",
                        exempt=lambda path: not path.endswith(("/users", "/conversations")))
    pipeline = make_pipeline(tmp_path, "limited")
    limited = run(pipeline, "meetric_partner", **kwargs(sim, retry_after_max_seconds=0.2))
    assert limited.ok, limited.error
    assert {"users", "conversations (list)"} <= set(limited.report.waiting)
    assert any("longer than retry_after_max_seconds" in w for w in limited.report.warnings)
    assert rows(pipeline, "teams", "count(*) AS n") == [{"n": len(sim.teams)}]  # the rest loaded
    sim.faults = Faults()
    assert run(pipeline, "meetric_partner", **kwargs(sim)).ok
    assert loaded(pipeline) == loaded(clean) == expected(sim)


def test_a_rate_limited_account_call_waits_while_every_list_loads_on_the_apis_clock(sim, tmp_path):
    sim.faults = Faults(rate_429=1.0, retry_after="3600", exempt=lambda path: not path.endswith("/account"))
    pipeline = make_pipeline(tmp_path, "no_account")
    result = run(pipeline, "meetric_partner", **kwargs(sim, retry_after_max_seconds=0.2))
    assert result.ok, result.error
    assert set(result.report.waiting) <= {"account", "conversations"}  # processing ones owe details
    assert "account" in result.report.waiting
    assert loaded(pipeline) == expected(sim)  # the clock came from the lists' own `_meta.timestamp`
    sim.faults = Faults()
    assert run(pipeline, "meetric_partner", **kwargs(sim)).ok
    assert [r["id"] for r in rows(pipeline, "account", "id")] == [sim.account["id"]]


def test_the_cli_exits_0_and_says_what_waits_when_the_budget_is_spent(sim, tmp_path):
    env = {**os.environ, "SOURCES__MEETRIC_PARTNER__BASE_URL": sim.base_url,
           "SOURCES__MEETRIC_PARTNER__API_TOKEN": sim.token, "SOURCES__MEETRIC_PARTNER__PAGE_SIZE": "10",
           "SOURCES__MEETRIC_PARTNER__HTTP__REQUESTS_PER_MINUTE": "0",
           "SOURCES__MEETRIC_PARTNER__HTTP__MAX_REQUESTS": "8"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "meetric_partner",
         "--duckdb-file", str(tmp_path / "warehouse.duckdb"), "--pipelines-dir", str(tmp_path / "pipelines")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "next run" in proc.stdout and "max_requests=8" in proc.stdout
