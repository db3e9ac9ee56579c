"""The Meetric workspace source against its simulator: what a full load holds, and what later runs read and load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulators.meetric import MeetricSimulator
from tests.meetric_workspace_helpers import (
    DETAIL,
    TABLES,
    canonical,
    expected,
    live,
    load,
    loaded,
    requests_by_endpoint,
    today,
)
from tests.utils import make_pipeline, rows


@pytest.fixture
def two_accounts(start_sim) -> MeetricSimulator:
    return start_sim(MeetricSimulator, accounts=2, conversations=24, users=8, span_days=14,
                     seed=7, rate_limit=None)


def test_full_load_equals_the_simulators_data_for_two_accounts(two_accounts, tmp_path) -> None:
    sim = two_accounts
    pipeline = make_pipeline(tmp_path, "meetric")
    counts, report = load(pipeline, sim)
    for table in TABLES:
        assert loaded(pipeline, table) == expected(sim, table), table
    assert {r["account_id"] for r in rows(pipeline, "conversations")} == set(sim.account_ids)
    assert counts["conversations"] == 48 and counts["users"] == 16
    assert {r["type"] for r in rows(pipeline, "insights")} == {"action_item", "topic", "decision"}
    assert report.warnings == [] and report.skipped == {}
    assert all(r.method == "GET" for r in sim.log)


def test_second_run_makes_only_list_requests_and_loads_nothing(two_accounts, tmp_path) -> None:
    sim = two_accounts
    pipeline = make_pipeline(tmp_path, "meetric")
    load(pipeline, sim)
    first, first_by_endpoint = len(sim.log), requests_by_endpoint(sim)
    sim.clear_log()
    counts, report = load(pipeline, sim)
    assert counts == {}
    paths = [r.path for r in sim.log]
    assert not [p for p in paths if DETAIL.search(p) or "/managers" in p]
    assert all(r.method == "GET" and r.status == 200 for r in sim.log)
    by_endpoint = requests_by_endpoint(sim)
    # per account: the re-read window of conversations, the insights of the last day, the action
    # items down to the newest loaded (less 10 minutes), the users, one trends request, and one
    # summary a day of the 7-day window
    assert by_endpoint["action-items"] < first_by_endpoint["action-items"]
    assert by_endpoint["conversations"] < first_by_endpoint["conversations"]
    assert by_endpoint["insights/trends"] == 2
    assert by_endpoint["insights/summary"] == 2 * 8
    assert len(sim.log) < first / 2
    print(f"\nsecond run: {len(sim.log)} requests (first run: {first}), {dict(by_endpoint)}")
    counts, _ = load(pipeline, sim, sweep_interval_hours=0)  # a sweep re-reads all, loads no unchanged row
    assert counts == {}


def test_conversation_processed_between_runs_arrives_with_its_summary_and_insights(two_accounts, tmp_path) -> None:
    sim = two_accounts
    pipeline = make_pipeline(tmp_path, "meetric")
    load(pipeline, sim)
    waiting = [r for r in rows(pipeline, "conversations") if r["status"] == "processing"]
    assert waiting, "the simulator should leave some conversations processing"
    cid = max(waiting, key=lambda r: r["date"])["id"]
    assert not [r for r in rows(pipeline, "insights") if r["conversation_id"] == cid]
    sim.complete(cid)
    sim.clear_log()
    counts, _ = load(pipeline, sim)
    conv = next(r for r in rows(pipeline, "conversations") if r["id"] == cid)
    assert conv["status"] == "processed" and conv["summary"] and conv["sentiment__score"] is not None
    got = {r["id"] for r in rows(pipeline, "insights") if r["conversation_id"] == cid}
    acc = conv["account_id"]
    assert got == {i["id"] for i in sim.public(acc, "insights") if i["conversation_id"] == cid} != set()
    assert counts["conversations"] == 1
    assert not [r for r in sim.log if DETAIL.search(r.path)]
    # the day's aggregates were recomputed too
    day = conv["date"].astimezone(UTC).date()
    trend = next(r for r in rows(pipeline, "insight_trends") if r["account_id"] == acc and r["period_start"] == day)
    want = sim.trends(acc, day, day, "day")[0]
    figures = ("conversations", "total_duration", "avg_sentiment", "action_items")
    assert {k: trend[k] for k in figures} == {k: want[k] for k in figures}
    summary = next(r for r in rows(pipeline, "insight_summary") if r["account_id"] == acc and r["period_start"] == day)
    assert summary["action_items_open"] + summary["action_items_completed"] == trend["action_items"]
    for table in ("conversations", "insights", "action_items", "insight_trends", "insight_summary"):
        assert loaded(pipeline, table) == expected(sim, table), table


def test_conversation_processed_after_the_window_is_caught_by_a_narrow_list(two_accounts, tmp_path) -> None:
    sim = two_accounts
    acc = sim.account_ids[0]
    old_day = today() - timedelta(days=12)
    late = sim.add_conversation(acc, date=datetime.combine(old_day, datetime.min.time(), UTC) + timedelta(hours=9),
                                status="processing")
    pipeline = make_pipeline(tmp_path, "meetric")
    load(pipeline, sim, lookback_days=7)
    sim.complete(late["id"])
    sim.clear_log()
    load(pipeline, sim, lookback_days=7)
    conv = next(r for r in rows(pipeline, "conversations") if r["id"] == late["id"])
    assert conv["status"] == "processed" and conv["summary"]
    conversation_lists = [r.query for r in sim.log if r.path.endswith("/conversations")]
    narrow = {(q["start_date"], q["end_date"]) for q in conversation_lists if q.get("end_date")}
    assert (old_day.isoformat(), old_day.isoformat()) in narrow
    assert not [q for q in conversation_lists if not q.get("start_date")], "no full re-read between sweeps"


def test_action_item_whose_status_changed_is_updated(two_accounts, tmp_path) -> None:
    sim = two_accounts
    pipeline = make_pipeline(tmp_path, "meetric")
    load(pipeline, sim)
    full = requests_by_endpoint(sim)["action-items"]
    # an item of a conversation older than the 7-day window: its day's summary is outside it too
    old = {r["id"] for r in rows(pipeline, "conversations") if r["date"] < datetime.now(UTC) - timedelta(days=9)}
    item = next(r for r in rows(pipeline, "action_items") if r["status"] == "pending" and r["conversation_id"] in old)
    sim.set_action_item_status(item["id"], "completed")
    sim.clear_log()
    counts, _ = load(pipeline, sim)
    assert counts["action_items"] == 1
    now = next(r for r in rows(pipeline, "action_items") if r["id"] == item["id"])
    assert now["status"] == "completed" and now["updated_at"] > item["updated_at"]
    # newest first, stopping at what is loaded (less the 10-minute overlap): a page or two per account
    assert requests_by_endpoint(sim)["action-items"] <= full / 3
    assert loaded(pipeline, "action_items") == expected(sim, "action_items")
    # the summary of that conversation's day was asked again, though it is older than the window
    assert counts["insight_summary"] == 1
    assert loaded(pipeline, "insight_summary") == expected(sim, "insight_summary")


def test_sweep_marks_deleted_records_and_removed_managers(two_accounts, tmp_path) -> None:
    sim = two_accounts
    pipeline = make_pipeline(tmp_path, "meetric")
    load(pipeline, sim)
    conv = next(r for r in rows(pipeline, "conversations") if r["status"] == "processed")
    children = {t: {r["id"] for r in rows(pipeline, t) if r["conversation_id"] == conv["id"]}
                for t in ("insights", "action_items")}
    sim.delete_conversation(conv["id"])
    acc = sim.accounts[conv["account_id"]]
    team, managers = next((t, m) for t, m in acc.team_managers.items() if m)
    gone = next(iter(managers))
    sim.remove_team_manager(team, gone)
    load(pipeline, sim)  # between sweeps: nothing is marked yet
    assert len(live(pipeline, "conversations")) == 48
    load(pipeline, sim, sweep_interval_hours=0)
    assert {r["id"] for r in rows(pipeline, "conversations", where="deleted_at IS NOT NULL")} == {conv["id"]}
    for table, ids in children.items():
        assert {r["id"] for r in rows(pipeline, table, where="deleted_at IS NOT NULL")} == ids
    removed = rows(pipeline, "team_managers", where="deleted_at IS NOT NULL")
    assert [(r["team_id"], r["user_id"]) for r in removed] == [(team, gone)] and removed[0]["name"]
    for table in ("conversations", "insights", "action_items", "team_managers"):
        assert canonical(table, live(pipeline, table), from_api=False) == expected(sim, table), table
    for table in ("insight_trends", "insight_summary"):  # the deleted conversation's day, recomputed
        assert loaded(pipeline, table) == expected(sim, table), table
