"""convo: an account holding every kind of malformed record loads, and each one is kept or named."""

from __future__ import annotations

import orjson

from simulators.base import BAD_RECORD_KINDS
from simulators.convo import ConvoSimulator
from tests.test_convo import FAST, assert_matches_sim, pipeline_for
from tests.utils import bad_record_outcome, rows, run

# where each kind lands: (table, key column the kind's id is found in)
WHERE = {
    "number_as_string": ("conversations", "id"),  # segmentCount "293"
    "bad_timestamp": ("conversations", "id"),  # startTime "2026-13-45T25:61:00Z"
    "empty_timestamp": ("calendar_events", "id"),  # start.dateTime ""
    "object_as_json_string": ("feedback", "conversation_id"),  # categoryScores as JSON text
    "type_change": ("calendar_events", "id"),  # start as a string, not an object
    "segment_null_text": ("transcript_segments", "meeting_id"),
    "segment_no_start": ("transcript_segments", "meeting_id"),
}


def load_through_the_cli_path(pipeline, sim):
    return run(pipeline, "convo", **sim.source_config(), page_size=7, http=FAST)


def test_every_kind_of_bad_record_is_kept_or_named_and_the_run_succeeds(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=14, tier="professional", seed=41)
    bad = sim.add_bad_records()
    assert set(bad) == set(BAD_RECORD_KINDS)
    pipeline = pipeline_for(tmp_path)
    result = load_through_the_cli_path(pipeline, sim)
    assert result.ok, result.error
    for kind, record_id in bad.items():
        table, key = WHERE[kind]
        assert bad_record_outcome(pipeline, result.report, table, record_id, key=key), kind
    # the good records load completely, and the bad ones as far as they can be read
    assert_matches_sim(pipeline, sim)
    assert {r["id"] for r in rows(pipeline, "calendar_events")} == set(sim.events)


def test_segment_count_sent_as_text_is_read_as_a_number(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=3, tier="professional", seed=42)
    cid = sim.add_bad_records()["number_as_string"]
    pipeline = pipeline_for(tmp_path)
    result = load_through_the_cli_path(pipeline, sim)
    assert result.ok, result.error
    row = rows(pipeline, "conversations", where=f"id = '{cid}'")[0]
    assert row["segment_count"] == 293
    assert len(rows(pipeline, "transcript_segments", where=f"meeting_id = '{cid}'")) == 293
    named = [b for b in result.report.bad_records if b.record_id == cid]
    assert [(b.table, b.loaded) for b in named] == [("conversations", True)]
    assert "segmentCount='293' read as 293" in named[0].problem


def test_unreadable_start_time_loads_the_row_and_names_it_without_fetching_its_transcript(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=3, tier="professional", seed=43)
    cid = sim.add_bad_records()["bad_timestamp"]
    pipeline = pipeline_for(tmp_path)
    result = load_through_the_cli_path(pipeline, sim)
    assert result.ok, result.error
    row = rows(pipeline, "conversations", where=f"id = '{cid}'")[0]
    assert row["start_time"] is None and row["start_time__v_text"] == "2026-13-45T25:61:00Z"
    assert not sim.requests(pattern=f"/{cid}/")
    assert any(b.record_id == cid and "not fetched" in b.problem for b in result.report.bad_records)


def test_segments_with_null_text_or_no_timestamp_load_and_the_untimed_one_is_named(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=3, tier="professional", seed=44)
    bad = sim.add_bad_records()
    pipeline = pipeline_for(tmp_path)
    result = load_through_the_cli_path(pipeline, sim)
    assert result.ok, result.error
    silent = rows(pipeline, "transcript_segments", where=f"meeting_id = '{bad['segment_null_text']}'",
                  order_by="segment_index")
    assert [r["text"] is None for r in silent] == [False, False, True, False, False]
    untimed = rows(pipeline, "transcript_segments", where=f"meeting_id = '{bad['segment_no_start']}'",
                   order_by="segment_index")
    assert [r["start_seconds"] is None for r in untimed] == [False, False, False, True, False]
    assert {(b.table, b.record_id) for b in result.report.bad_records if "#" in b.record_id} == {
        ("transcript_segments", f"{bad['segment_no_start']}#3")}


def test_scores_sent_as_json_text_are_read_as_the_object(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=3, tier="professional", seed=45)
    cid = sim.add_bad_records()["object_as_json_string"]
    pipeline = pipeline_for(tmp_path)
    result = load_through_the_cli_path(pipeline, sim)
    assert result.ok, result.error
    row = rows(pipeline, "feedback", where=f"conversation_id = '{cid}'")[0]
    scores = sim.conversations[cid].feedback["feedback"]["categoryScores"]
    assert isinstance(scores, str)
    assert row["category_scores__clarity"] == float(orjson.loads(scores)["clarity"])
    assert any(b.table == "feedback" and b.record_id == cid for b in result.report.bad_records)


def test_calendar_events_with_an_empty_or_flat_start_load_as_sent_and_are_named(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=2, tier="professional", seed=46)
    bad = sim.add_bad_records()
    pipeline = pipeline_for(tmp_path)
    result = load_through_the_cli_path(pipeline, sim)
    assert result.ok, result.error
    by_id = {r["id"]: r for r in rows(pipeline, "calendar_events")}
    assert by_id[bad["empty_timestamp"]]["start__date_time"] is None
    assert by_id[bad["empty_timestamp"]]["start__date_time__v_text"] == ""
    assert by_id[bad["type_change"]]["start"] is not None  # the flat string, as sent
    named = {b.record_id: b.problem for b in result.report.bad_records if b.table == "calendar_events"}
    assert "start has no dateTime or date" in named[bad["empty_timestamp"]]
    assert "start sent as text" in named[bad["type_change"]]


def test_a_second_run_neither_fails_nor_reloads_the_bad_records(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=8, tier="professional", seed=47)
    sim.add_bad_records()
    pipeline = pipeline_for(tmp_path)
    assert load_through_the_cli_path(pipeline, sim).ok
    sim.clear_log()
    again = load_through_the_cli_path(pipeline, sim)
    assert again.ok, again.error
    assert again.rows == {}
    assert not sim.requests(pattern=r"/conversations/[^/]+/")
