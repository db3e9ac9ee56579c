"""Malformed records from the partner API: each one loads or is named, and the run goes on."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from simulators.base import BAD_RECORD_KINDS
from simulators.meetric_partner import MeetricPartnerSimulator
from sources._common.ledger import expand, records_of
from sources._common.timeutil import parse_instant

from .partner_helpers import (
    conversation_id_of,
    cursor_of,
    expected,
    ledger_of,
    loaded,
    partner_kwargs,
)
from .utils import bad_record_outcome, make_pipeline, rows, run

LIMITS_OFF = {"requests_per_minute": None, "daily_quota": None}
SEGMENT_KEY = "meeting_id || '#' || CAST(segment_index AS TEXT)"
CONVERSATION_TABLES = ("conversations", "transcript_segments", "insights", "conversation_topics", "summaries")


@pytest.fixture
def sim(start_sim) -> MeetricPartnerSimulator:
    return start_sim(MeetricPartnerSimulator, conversations=40, seed=13, processing_share=0, **LIMITS_OFF)


def where(record_id: str) -> tuple[str, str]:
    return ("transcript_segments", SEGMENT_KEY) if "#" in record_id else ("conversations", "id")


def one(pipeline, table: str, columns: str, condition: str) -> dict:
    found = rows(pipeline, table, columns, where=condition)
    assert len(found) == 1, (table, condition, found)
    return found[0]


def test_every_kind_of_bad_record_is_loaded_or_named_and_the_run_succeeds(sim, tmp_path):
    bad = sim.add_bad_records()
    assert set(bad) == set(BAD_RECORD_KINDS)
    extras = sim.bad_record_extras
    pipeline = make_pipeline(tmp_path, "bad")
    result = run(pipeline, "meetric_partner", **partner_kwargs(sim))  # the CLI's path
    assert result.ok, result.error
    report = result.report

    for kind, record_id in bad.items():
        table, key = where(record_id)
        assert bad_record_outcome(pipeline, report, table, record_id, key=key) == {"loaded", "named"}, kind
    for kind in ("bad_updated_at", "chat_message_no_sent_at"):
        table, key = where(extras[kind])
        assert bad_record_outcome(pipeline, report, table, extras[kind], key=key) == {"loaded", "named"}, kind
    for kind in ("insight_start_as_string", "insight_as_json_string"):
        assert bad_record_outcome(pipeline, report, "insights", extras[kind]) == {"loaded", "named"}, kind
    assert bad_record_outcome(pipeline, report, "conversation_topics", extras["topic_mentions_as_string"],
                              key="conversation_id || '/' || name") == {"loaded", "named"}

    # what each one loaded as
    number = bad["number_as_string"]
    assert one(pipeline, "conversations", "duration", f"id = '{number}'")["duration"] == \
        int(sim.conversations[number].fields["duration"])
    sent = next(i["start"] for i in sim.conversations[number].insights if i["id"] == extras["insight_start_as_string"])
    assert isinstance(sent, str)
    assert one(pipeline, "insights", "start", f"id = '{extras['insight_start_as_string']}'")["start"] == float(sent)
    assert one(pipeline, "conversation_topics", "mentions", f"conversation_id = '{number}'")["mentions"] == 3
    dated = one(pipeline, "conversations", "date, date__v_text", f"id = '{bad['bad_timestamp']}'")
    assert dated == {"date": None, "date__v_text": "2026-13-45T25:61:00Z"}  # the raw value kept
    undated = sim.conversations[bad["bad_timestamp"]]
    assert one(pipeline, "summaries", "summary", f"conversation_id = '{undated.id}'")["summary"] == undated.summary
    assert rows(pipeline, "transcript_segments", "count(*) AS n", where=f"meeting_id = '{undated.id}'") == [
        {"n": len(undated.transcript["sentences"])}]  # its details loaded too
    assert one(pipeline, "conversations", "updated_at", f"id = '{bad['empty_timestamp']}'")["updated_at"] is None
    assert one(pipeline, "conversations", "updated_at__v_text", f"id = '{extras['bad_updated_at']}'") == {
        "updated_at__v_text": "yesterday"}
    as_text = sim.conversations[bad["object_as_json_string"]]
    assert one(pipeline, "conversations", "department__id, user__email", f"id = '{as_text.id}'") == {
        "department__id": orjson.loads(as_text.fields["department"])["id"],
        "user__email": orjson.loads(as_text.fields["user"])["email"]}  # read as the objects
    changed = sim.conversations[bad["type_change"]]
    assert one(pipeline, "conversations", "participants", f"id = '{changed.id}'")["participants"] == \
        changed.fields["participants"]
    null_text, index = bad["segment_null_text"].split("#")
    assert one(pipeline, "transcript_segments", "text, start_seconds",
               f"meeting_id = '{null_text}' AND segment_index = {index}")["text"] is None
    no_start, index = bad["segment_no_start"].split("#")
    segment = one(pipeline, "transcript_segments", "text, start_seconds",
                  f"meeting_id = '{no_start}' AND segment_index = {index}")
    assert segment["start_seconds"] is None and segment["text"]
    chat, index = extras["chat_message_no_sent_at"].split("#")
    assert one(pipeline, "transcript_segments", "start_seconds",
               f"meeting_id = '{chat}' AND segment_index = {index}")["start_seconds"] is None

    # the good records still load completely, and exactly
    bad_ids = {record_id.split("#")[0] for record_id in [*bad.values(), extras["bad_updated_at"]]}
    want, got = expected(sim, exclude=bad_ids), loaded(pipeline)
    for table in CONVERSATION_TABLES:
        assert {r for r in got[table] if conversation_id_of(table, r) not in bad_ids} == want[table], table
    for table in ("users", "teams", "departments"):
        assert got[table] == want[table], table
    assert {r.record_id.split("#")[0].split("/")[0] for r in report.bad_records} <= bad_ids | {
        extras["insight_start_as_string"], extras["insight_as_json_string"]}


def test_a_second_run_over_bad_records_neither_fails_nor_reloads_them(sim, tmp_path):
    sim.add_bad_records()
    pipeline = make_pipeline(tmp_path, "bad")
    assert run(pipeline, "meetric_partner", **partner_kwargs(sim)).ok
    sim.clear_log()
    second = run(pipeline, "meetric_partner", **partner_kwargs(sim))
    assert second.ok, second.error
    assert second.rows == {}
    assert sim.requests("GET", r"/conversations/[^/]+") == []
    # and a sweep reads the whole list again without loading or failing either
    sweep = run(pipeline, "meetric_partner", **partner_kwargs(sim, sweep_interval_hours=0))
    assert sweep.ok, sweep.error
    assert sweep.rows == {}
    assert rows(pipeline, "conversations", "count(*) AS n", where="deleted_at IS NOT NULL") == [{"n": 0}]


def test_an_unreadable_date_never_moves_the_listing_cursor(sim, tmp_path):
    newest_readable = max(c.date for c in sim.visible())
    garbled = sim.add_conversation(date=sim.now() - timedelta(minutes=5), status="completed")
    garbled.overrides["date"] = "not a date"
    pipeline = make_pipeline(tmp_path, "bad")
    result = run(pipeline, "meetric_partner", **partner_kwargs(sim))
    assert result.ok, result.error
    assert bad_record_outcome(pipeline, result.report, "conversations", garbled.id) == {"loaded", "named"}
    assert rows(pipeline, "summaries", "count(*) AS n", where=f"conversation_id = '{garbled.id}'") == [{"n": 1}]
    assert abs(parse_instant(cursor_of(pipeline)["newest_date"]) - newest_readable) < timedelta(milliseconds=2)
    # it is filed under a date no later than its real one (a lower bound), never under "now"
    assert parse_instant(expand(records_of(ledger_of(pipeline))[garbled.id])["day"]) <= garbled.date


def test_a_processing_conversation_with_an_unreadable_date_gets_its_details_once_completed(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "bad")
    assert run(pipeline, "meetric_partner", **partner_kwargs(sim)).ok
    late = sim.add_conversation(date=sim.now() - timedelta(hours=6), status="processing", medium="chat")
    late.overrides["date"] = ""
    first = run(pipeline, "meetric_partner", **partner_kwargs(sim))
    assert first.ok, first.error
    assert "conversations" in first.report.waiting
    sim.advance(hours=3)
    sim.complete(late.id)
    sim.clear_log()
    second = run(pipeline, "meetric_partner", **partner_kwargs(sim))
    assert second.ok, second.error
    assert [r.path.rsplit("/", 1)[1] for r in sim.requests("GET", r"/conversations/[^/]+$")] == [late.id]
    assert "conversations" not in second.report.waiting
    # a chat transcript without a readable conversation date loads, with start_seconds null, and is named
    segments = rows(pipeline, "transcript_segments", "text, start_seconds", where=f"meeting_id = '{late.id}'")
    assert len(segments) == len(late.transcript["messages"])
    assert {s["start_seconds"] for s in segments} == {None}
    assert bad_record_outcome(pipeline, second.report, "transcript_segments", late.id,
                              key="meeting_id") == {"loaded", "named"}
