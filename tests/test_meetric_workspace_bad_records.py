"""Malformed records from the Meetric workspace API: each loads or is named, and the run goes on.

This API has no timed transcript segments (a conversation has only a `transcript_url`), so
the two segment kinds are what it has closest: an insight without `content` (the text) and
an action item without `created_at` (its start).
"""

from __future__ import annotations

from datetime import timedelta

from simulators.base import BAD_RECORD_KINDS
from simulators.meetric import MeetricSimulator
from tests.meetric_workspace_helpers import FAST, TABLES, expected, loaded
from tests.utils import bad_record_outcome, make_pipeline, rows, run

TABLE_OF = {"number_as_string": "conversations", "bad_timestamp": "action_items",
            "empty_timestamp": "conversations", "object_as_json_string": "conversations",
            "type_change": "conversations", "segment_null_text": "insights", "segment_no_start": "action_items"}


def config(sim: MeetricSimulator, **kwargs):
    return {**sim.source_config(), "page_size": 4, "http": FAST, **kwargs}


def row_of(pipeline, table: str, record_id: str) -> dict:
    found = rows(pipeline, table, where=f"id = '{record_id}'")
    assert len(found) == 1, (table, record_id, found)
    return found[0]


def problems_of(report, table: str, record_id: str) -> str:
    return " ".join(b.problem for b in report.bad_records if b.table == table and record_id in b.record_id)


def test_every_kind_of_bad_record_is_loaded_or_named_and_the_good_ones_load_completely(start_sim, tmp_path):
    sim = start_sim(MeetricSimulator, conversations=24, users=6, span_days=10, rate_limit=None, seed=31)
    bad = sim.add_bad_records()
    assert set(bad) == set(BAD_RECORD_KINDS)
    pipeline = make_pipeline(tmp_path, "meetric")
    result = run(pipeline, "meetric", **config(sim))
    assert result.ok, result.error
    report = result.report
    for kind, record_id in bad.items():
        assert bad_record_outcome(pipeline, report, TABLE_OF[kind], record_id), kind

    stored = sim.accounts[sim.account_ids[0]].conversations
    as_text = row_of(pipeline, "conversations", bad["number_as_string"])
    assert as_text["duration"] == stored[bad["number_as_string"]]["duration"]  # "1800" read as 1800
    assert "duration=" in problems_of(report, "conversations", bad["number_as_string"])
    empty = row_of(pipeline, "conversations", bad["empty_timestamp"])
    assert empty["date"] is None and empty["date__raw"] == ""
    assert "date=''" in problems_of(report, "conversations", bad["empty_timestamp"])
    as_json = row_of(pipeline, "conversations", bad["object_as_json_string"])
    assert as_json["sentiment__score"] == stored[bad["object_as_json_string"]]["sentiment"]["score"]
    assert as_json["sentiment__label"] == stored[bad["object_as_json_string"]]["sentiment"]["label"]
    assert "sentiment=" in problems_of(report, "conversations", bad["object_as_json_string"])
    changed = row_of(pipeline, "conversations", bad["type_change"])
    names = ", ".join(p["name"] for p in stored[bad["type_change"]]["participants"])
    assert changed["participants"] is None and changed["participants__raw"] == names
    assert "participants=" in problems_of(report, "conversations", bad["type_change"])
    bad_at = row_of(pipeline, "action_items", bad["bad_timestamp"])
    assert bad_at["updated_at"] is None and bad_at["updated_at__raw"] == "2026-13-45T25:61:00Z"
    assert "updated_at=" in problems_of(report, "action_items", bad["bad_timestamp"])
    assert row_of(pipeline, "insights", bad["segment_null_text"])["content"] is None
    no_start = row_of(pipeline, "action_items", bad["segment_no_start"])
    assert no_start["created_at"] is None and no_start["content"] == "Send the specs"

    # the good records are all there, exactly as the API sent them
    exclude = set(bad.values())
    for table in TABLES:
        got = {k: v for k, v in loaded(pipeline, table).items() if k[0] not in exclude}
        assert got == expected(sim, table, exclude=exclude) != {}, table

    again = run(pipeline, "meetric", **config(sim))
    assert again.ok, again.error
    assert not {t: n for t, n in again.rows.items() if t in ("conversations", "insights", "action_items")}
    assert rows(pipeline, "conversations", "count(*) AS n", where=f"id = '{bad['type_change']}'")[0]["n"] == 1


def test_an_action_item_with_an_unreadable_updated_at_neither_stops_nor_widens_the_read(start_sim, tmp_path):
    sim = start_sim(MeetricSimulator, conversations=30, users=6, span_days=10, rate_limit=None, seed=32)
    bad = sim.add_bad_records()
    pipeline = make_pipeline(tmp_path, "meetric")
    assert run(pipeline, "meetric", **config(sim, page_size=2)).ok
    account = sim.accounts[sim.account_ids[0]]
    # three older items change status; the unreadable one moves above them all
    older = sorted((a for a in account.action_items.values() if a["id"] not in bad.values()),
                   key=lambda a: a["updated_at"])[:3]
    sim.advance(minutes=2)
    for n, item in enumerate(older):
        sim.advance(seconds=1)
        sim.set_action_item_status(item["id"], "completed" if n % 2 else "in_progress")
    account.action_items[bad["bad_timestamp"]]["updated_at"] = sim.now() + timedelta(seconds=1)
    account.version += 1
    sim.clear_log()
    result = run(pipeline, "meetric", **config(sim, page_size=2))
    assert result.ok, result.error
    for item in older:
        assert row_of(pipeline, "action_items", item["id"])["status"] == item["status"]
    listed = [r for r in sim.log if r.path.endswith("/action-items")]
    total = len(account.action_items)
    assert len(listed) <= 4 < (total + 1) // 2, (len(listed), total)  # the top pages only, not the list
