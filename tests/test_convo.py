"""convo: full load, incremental runs, offsets, renames and deletions, calendar, webhooks, secrets."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import pytest

from pipelines.runner import explain
from simulators.convo import ConvoSimulator
from sources._common.errors import AuthError
from sources._common.records import read_dict, read_instant, read_int
from sources._common.report import get_report
from sources.convo import check, convo
from sources.convo.settings import SCORE_CATEGORIES
from tests.utils import grep_tree, make_pipeline, rows, run_strict

FAST = {"requests_per_minute": 0, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}
MAIN_TABLES = ("conversations", "transcript_segments", "keypoints", "feedback", "calendar_events",
               "user_profile")


def pipeline_for(tmp_path, name: str = "convo") -> dlt.Pipeline:
    return make_pipeline(tmp_path, name, dataset=f"{name}_data")


def load(pipeline: dlt.Pipeline, sim: ConvoSimulator, **kw: Any) -> Any:
    kw.setdefault("page_size", 7)
    kw.setdefault("http", FAST)
    return run_strict(pipeline, convo(**sim.source_config(), **kw))


def loaded(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows the last run loaded, per data table."""
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return {t: n for t, n in counts.items() if not t.startswith("_dlt")}


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def per_item_requests(sim: ConvoSimulator) -> list:
    return sim.requests(pattern=r"/conversations/[^/]+/")


def expected_segments(sim: ConvoSimulator) -> list[tuple]:
    """(meeting_id, index, speaker, start_seconds, text) computed from what the API sends;
    a conversation whose `startTime` cannot be read has its transcript left unfetched."""
    out = []
    for conv in sim.visible():
        start = read_instant(sim.public(conv)["startTime"])
        if start is None:
            continue
        for i, seg in enumerate(sim.transcript(conv)["segments"]):
            at = read_instant(seg.get("timestamp"))
            out.append((conv.id, i, seg["speaker"],
                        None if at is None else round((at - start).total_seconds(), 3), seg["text"]))
    return sorted(out, key=lambda r: r[:2])


def table_rows(pipeline: dlt.Pipeline, table: str, key: str) -> list[dict]:
    return sorted(rows(pipeline, table), key=lambda r: str(r[key]))


def snapshot(pipeline: dlt.Pipeline) -> dict[str, list]:
    """Every main table, in a comparable form (without dlt's own columns)."""
    keys = {"transcript_segments": "meeting_id", "keypoints": "conversation_id",
            "feedback": "conversation_id", "user_profile": "email"}
    out = {}
    for table in MAIN_TABLES:
        data = table_rows(pipeline, table, keys.get(table, "id"))
        if table == "transcript_segments":
            data.sort(key=lambda r: (r["meeting_id"], r["segment_index"]))
        out[table] = data
    return out


def assert_matches_sim(pipeline: dlt.Pipeline, sim: ConvoSimulator) -> None:
    """The tables hold exactly what the simulator's API shows."""
    convs = {r["id"]: r for r in rows(pipeline, "conversations")}
    live = {c.id: sim.public(c) for c in sim.visible()}
    assert {i for i, r in convs.items() if r["deleted_at"] is None} == set(live)
    placed = set()  # conversations with a readable startTime: their transcripts and AI results load
    for cid, item in live.items():
        row = convs[cid]
        assert (row["title"], row["segment_count"], row["linked_calendar_event_id"]) == (
            item["title"], read_int(item["segmentCount"]), item["linkedCalendarEventId"])
        if read_instant(item["startTime"]) is not None:
            assert row["start_time"] == instant(item["startTime"])
            placed.add(cid)
    segs = [(r["meeting_id"], r["segment_index"], r["speaker"],
             None if r["start_seconds"] is None else round(r["start_seconds"], 3), r["text"])
            for r in rows(pipeline, "transcript_segments", order_by="meeting_id, segment_index")]
    assert segs == expected_segments(sim)
    for kind in ("keypoints", "feedback"):
        want = {c.id: instant(getattr(c, kind)["createdAt"]) for c in sim.visible()
                if getattr(c, kind) and c.id in placed}
        got = {r["conversation_id"]: r["created_at"] for r in rows(pipeline, kind)} if want else {}
        assert got == want, kind
    if any(c.feedback and c.id in placed for c in sim.visible()):
        scores = {r["conversation_id"]: (r["overall_score"], r["category_scores__listening"])
                  for r in rows(pipeline, "feedback")}
        for conv in sim.visible():
            if conv.feedback and conv.id in placed:
                inner = read_dict(conv.feedback["feedback"]["categoryScores"])
                assert scores[conv.id] == (float(conv.feedback["overallScore"]), float(inner["listening"]))
    profile = rows(pipeline, "user_profile")
    assert [(p["email"], p["name"], p["subscription__tier"]) for p in profile] == [
        (sim.profile["email"], sim.profile["name"], sim.keys[sim.api_key].tier)]


# ------------------------------------------------------------------------------ full load


def test_full_load_equals_simulator_data(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=30, tier="professional", seed=3)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    assert_matches_sim(pipeline, sim)
    events = {r["id"] for r in rows(pipeline, "calendar_events")}
    assert events == set(sim.events)
    assert {r["id"] for r in rows(pipeline, "webhooks")} == set(sim.webhooks)
    # unknown fields are kept: every fifth conversation carries `language`
    langs = {r["id"]: r["language"] for r in rows(pipeline, "conversations")}
    assert sum(1 for v in langs.values() if v) == sum(1 for c in sim.visible() if "language" in c.extra)
    assert sim.rate_limited == 0


def test_transcript_start_seconds_are_offsets_from_the_conversation_start(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=0, tier="professional", calendar_events=0)
    start = sim.now().replace(microsecond=0) - timedelta(hours=2)
    conv = sim.add_conversation(start=start, segments=4)
    for seg, offset in zip(conv.segments, (0.0, 2.0, 7.0, 31.0), strict=True):
        seg["at"] = start + timedelta(seconds=offset)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    got = rows(pipeline, "transcript_segments", order_by="segment_index")
    assert [r["start_seconds"] for r in got] == [0.0, 2.0, 7.0, 31.0]
    assert [r["end_seconds"] for r in got] == [None] * 4
    assert {r["meeting_id"] for r in got} == {conv.id}
    # the vendor's own instant is kept beside the offset
    assert all(r["timestamp"] for r in got)


def test_second_run_makes_only_list_requests_and_loads_nothing(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=25, tier="professional", seed=4)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    sim.clear_log()
    load(pipeline, sim)
    assert loaded(pipeline) == {}
    paths = sorted({r.path for r in sim.requests()})
    assert paths == ["/api/v1/calendar/events", "/api/v1/conversations", "/api/v1/user/profile",
                     "/api/v1/webhooks"]
    assert len(sim.requests(pattern="/conversations$")) == 1  # `since` the newest: one page
    assert per_item_requests(sim) == []


def test_new_conversation_arrives_on_the_next_run_with_its_transcript(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=12, tier="professional", seed=5)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    sim.clear_log()
    new = sim.add_conversation(segments=12)
    sim.add_keypoints(new.id)
    load(pipeline, sim)
    assert loaded(pipeline)["conversations"] == 1
    assert sorted(r.path.rsplit("/", 1)[1] for r in per_item_requests(sim)) == [
        "feedback", "keypoints", "transcript"]
    listing = sim.requests(pattern="/conversations$")[0]
    assert instant(listing.query["since"]) <= new.start
    assert_matches_sim(pipeline, sim)


def test_conversation_still_recording_or_transcribing_gets_its_transcript_once_ready(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=10, tier="professional", seed=6)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    live = sim.add_conversation(ended=False, start=sim.now() - timedelta(hours=9))
    untranscribed = sim.add_conversation(segments=0, start=sim.now() - timedelta(hours=8))
    load(pipeline, sim)
    row = [r for r in rows(pipeline, "conversations") if r["id"] == live.id][0]
    assert row["end_time"] is None
    assert not sim.requests(pattern=f"/({live.id}|{untranscribed.id})/transcript")
    sim.add_conversation()  # a newer one: the listing must still reach back to the open ones
    sim.finish(live.id, segments=11)
    sim.finish(untranscribed.id, segments=5)
    load(pipeline, sim)  # no sweep: the `since` listing reached back to them
    assert len(sim.requests(pattern=f"/({live.id}|{untranscribed.id})/transcript")) == 2
    assert_matches_sim(pipeline, sim)


def test_a_per_item_table_selected_alone_loads_alone_and_costs_only_its_calls(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=12, tier="professional", seed=26)
    pipeline = pipeline_for(tmp_path)
    source = convo(**sim.source_config(), page_size=7, http=FAST).with_resources("transcript_segments")
    run_strict(pipeline, source)
    assert set(loaded(pipeline)) == {"transcript_segments"}
    assert {r.path.rsplit("/", 1)[1] for r in per_item_requests(sim)} == {"transcript"}
    assert len(per_item_requests(sim)) == len(sim.visible())  # one request per conversation
    assert {r.path for r in sim.requests()} - {r.path for r in per_item_requests(sim)} == {
        "/api/v1/user/profile", "/api/v1/conversations"}  # no calendar, no webhooks
    assert len(rows(pipeline, "transcript_segments")) == len(expected_segments(sim))
    # everything next: the rows the first run did not load, and no transcript fetched again
    sim.clear_log()
    load(pipeline, sim)
    assert "transcript_segments" not in loaded(pipeline)
    assert not sim.requests(pattern="/transcript$")
    assert_matches_sim(pipeline, sim)


def test_a_sweep_cut_short_resumes_at_its_offset_and_marks_only_what_is_gone(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=40, tier="professional", seed=27)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, page_size=5)
    gone = [c.id for c in sim.visible()[30:32]]
    for cid in gone:
        sim.delete(cid)
    sim.advance(hours=25)
    load(pipeline, sim, page_size=5, http={**FAST, "max_requests": 8})  # the sweep is cut
    report = get_report("convo")
    assert "stopped at offset" in report.waiting["conversations (list)"]
    cursor = pipeline.state["sources"]["convo"]["ledger"]["conversations"]["cursor"]["listing"]
    assert cursor["kind"] == "sweep" and cursor["offset"] > 0
    assert all(r["deleted_at"] is None for r in rows(pipeline, "conversations"))
    sim.clear_log()
    load(pipeline, sim, page_size=5)
    full = [int(r.query["offset"]) for r in sim.requests(pattern="/conversations$") if "since" not in r.query]
    assert min(full) == max(0, cursor["offset"] - 10)  # resumed, a little before where it stopped
    marked = {r["id"] for r in rows(pipeline, "conversations") if r["deleted_at"] is not None}
    assert marked == set(gone)  # not the ones the cut sweep saw before it stopped
    assert {r["id"] for r in rows(pipeline, "conversations") if r["deleted_at"] is None} == {
        c.id for c in sim.visible()}


# ------------------------------------------------------------------------------ changes


def test_renamed_conversation_is_updated_and_deleted_one_marked_at_the_sweep(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=20, tier="professional", seed=7)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, sweep_interval_hours=24, ai_recheck_days=0)
    convs = sim.visible()
    renamed, deleted = convs[9], convs[14]
    sim.rename(renamed.id, "Renamed · Переименовано")
    sim.delete(deleted.id)
    load(pipeline, sim, sweep_interval_hours=24, ai_recheck_days=0)  # between sweeps: only what is new
    by_id = {r["id"]: r for r in rows(pipeline, "conversations")}
    assert by_id[deleted.id]["deleted_at"] is None
    sim.advance(hours=25)
    sim.clear_log()
    load(pipeline, sim, sweep_interval_hours=24, ai_recheck_days=0)
    assert per_item_requests(sim) == []  # the sweep reads list pages only
    # the renamed row, and the deleted one written back whole with its mark (in the run itself)
    assert loaded(pipeline) == {"conversations": 2}
    by_id = {r["id"]: r for r in rows(pipeline, "conversations")}
    assert by_id[renamed.id]["title"] == "Renamed · Переименовано"
    assert by_id[deleted.id]["deleted_at"] is not None
    assert sum(1 for r in by_id.values() if r["deleted_at"] is not None) == 1
    # its transcript stays; restoring it brings the row back to life
    assert rows(pipeline, "transcript_segments", where=f"meeting_id = '{deleted.id}'")
    sim.restore(deleted.id)
    load(pipeline, sim, sweep_interval_hours=0)
    by_id = {r["id"]: r for r in rows(pipeline, "conversations")}
    assert by_id[deleted.id]["deleted_at"] is None
    assert_matches_sim(pipeline, sim)


def test_a_conversation_whose_transcript_answers_404_is_marked_without_waiting_for_a_sweep(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=12, tier="professional", seed=29)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, http={**FAST, "max_requests": 8})  # a few transcripts only: the rest owed
    loaded_ids = {r["meeting_id"] for r in rows(pipeline, "transcript_segments")}
    owed = [c.id for c in sim.visible() if c.id not in loaded_ids]
    assert owed and loaded_ids
    sim.delete(owed[-1])
    load(pipeline, sim)  # no sweep due: the `since` listing does not show it, its owed transcript is asked
    assert [r.status for r in sim.requests(pattern=f"/{owed[-1]}/transcript$")] == [404]
    assert {r["id"] for r in rows(pipeline, "conversations") if r["deleted_at"] is not None} == {owed[-1]}


def test_sweep_that_lists_nothing_marks_nothing(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=8, tier="professional", seed=8)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    for conv in sim.visible():
        sim.delete(conv.id)
    load(pipeline, sim, sweep_interval_hours=0)
    assert all(r["deleted_at"] is None for r in rows(pipeline, "conversations"))
    assert any("refusing to mark" in w for w in get_report("convo").warnings)


def test_changed_segment_count_refetches_the_transcript_whole(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=6, tier="professional", seed=9)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    conv = sim.visible()[3]
    sim.finish(conv.id, segments=3)  # re-transcribed shorter: no stale segments may survive
    load(pipeline, sim, sweep_interval_hours=0)
    assert len(rows(pipeline, "transcript_segments", where=f"meeting_id = '{conv.id}'")) == 3
    assert_matches_sim(pipeline, sim)


def test_malformed_conversation_is_named_and_its_row_kept(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=5, tier="professional", seed=10)
    bad = sim.visible()[2]
    original = sim.public

    def public(conv):
        item = original(conv)
        return {**item, "startTime": "not a date"} if conv.id == bad.id else item

    sim.public = public
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    named = [b for b in get_report("convo").bad_records if b.record_id == bad.id]
    assert named and named[0].table == "conversations" and named[0].loaded
    assert "startTime='not a date' unreadable" in named[0].problem
    assert bad.id in {r["id"] for r in rows(pipeline, "conversations")}
    assert not sim.requests(pattern=f"/{bad.id}/transcript")


def test_feedback_scores_load_as_doubles_whether_whole_or_fractional(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=12, tier="professional", keypoints_share=0,
                    feedback_share=1, segments=(10, 14), seed=23)
    served = [c.feedback for c in sim.visible() if c.feedback]
    values = [v for f in served for v in f["feedback"]["categoryScores"].values()]
    assert {type(v) for v in values} == {int, float}  # `9` and `7.5` side by side, as the vendor sends
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    columns = pipeline.default_schema.tables["feedback"]["columns"]
    for name in ("overall_score", "talk_listen_ratio", *(f"category_scores__{c}" for c in SCORE_CATEGORIES)):
        assert columns[name]["data_type"] == "double", name
    assert not [c for c in columns if "__v_" in c]  # no variant columns: one type per column
    got = {r["conversation_id"]: r for r in rows(pipeline, "feedback")}
    for f in served:
        row, inner = got[f["id"]], f["feedback"]
        assert row["category_scores__time_management"] == float(inner["categoryScores"]["timeManagement"])
        assert row["overall_score"] == float(f["overallScore"])
        assert (row["top_priority__focus"] is not None) == ("topPriority" in inner)
    assert {r["top_priority__focus"] is None for r in got.values()} == {True, False}
    strengths = rows(pipeline, "feedback__strengths")
    assert len(strengths) == sum(len(f["feedback"]["strengths"]) for f in served)
    assert len(rows(pipeline, "feedback__growth_areas")) == sum(len(f["feedback"]["growthAreas"]) for f in served)


def test_user_profile_is_keyed_by_email_with_the_plan_and_the_ai_allowance(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=3, tier="enterprise", seed=24)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    columns = pipeline.default_schema.tables["user_profile"]["columns"]
    assert columns["email"].get("primary_key") and "id" not in columns
    [row] = rows(pipeline, "user_profile")
    assert (row["email"], row["name"], row["timezone"]) == (
        sim.profile["email"], sim.profile["name"], sim.profile["timezone"])
    assert row["subscription__tier"] == "enterprise" and row["subscription__status"] == "active"
    # Enterprise: unlimited AI generations, sent as null
    assert (row["api_usage__ai_generations__limit"], row["api_usage__ai_generations__remaining"]) == (None, None)
    assert row["api_usage__ai_generations__used"] == 0
    sim.advance(minutes=5)
    load(pipeline, sim)
    assert "user_profile" not in loaded(pipeline)  # nothing in it changes per call


def test_all_day_calendar_events_load_and_page_with_timed_ones(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=1, tier="professional", calendar_events=0)
    now = sim.now().replace(microsecond=0)
    days = [sim.add_event(now + timedelta(days=d), all_day=True) for d in (1, 3, 5, 9)]
    for i in range(56):  # more than one answer of 50
        sim.add_event(now + timedelta(hours=6 * i + 1))
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, calendar_days_ahead=30)
    assert len(sim.requests(pattern="/calendar/events")) >= 2
    by_id = {r["id"]: r for r in rows(pipeline, "calendar_events")}
    assert set(by_id) == set(sim.events)
    for event in days:
        assert by_id[event["id"]]["start__date"] == event["start"]["date"]
        assert by_id[event["id"]]["start__date_time"] is None
    assert get_report("convo").bad_records == []


def test_calendar_events_sharing_the_last_start_of_an_answer_are_not_skipped(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=1, tier="professional", calendar_events=0)
    at = sim.now().replace(microsecond=0) + timedelta(days=1)
    for i in range(50):
        sim.add_event(at + timedelta(minutes=i))
    last = at + timedelta(minutes=49)
    for _ in range(3):  # the 50th event's start, shared by three more
        sim.add_event(last)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    assert {r["id"] for r in rows(pipeline, "calendar_events")} == set(sim.events)


# ------------------------------------------------------------------------------ calendar, webhooks


def test_calendar_without_connection_is_skipped_with_a_note_then_loaded_once_connected(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=4, tier="professional", calendar_connected=False)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    report = get_report("convo")
    assert "no Google Calendar is connected" in report.skipped["calendar_events"]
    assert report.warnings == []
    sim.clear_log()
    load(pipeline, sim)  # not looked for again before the next sweep
    assert not sim.requests(pattern="/calendar/")
    sim.calendar_connected = True
    sim.advance(hours=25)
    load(pipeline, sim)
    assert {r["id"] for r in rows(pipeline, "calendar_events")} == set(sim.events)


def test_cancelled_calendar_event_is_marked_and_a_moved_one_updated(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=2, tier="professional", calendar_events=60)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, calendar_days_back=30, calendar_days_ahead=400)
    assert len(sim.requests(pattern="/calendar/events")) >= 2  # 60 events: more than one answer
    assert {r["id"] for r in rows(pipeline, "calendar_events")} == set(sim.events)
    future = [sim.events[eid] for eid, (start, _) in sim.event_times.items() if start > sim.now()]
    gone, moved = future[0], future[1]
    del sim.events[gone["id"]]
    moved["summary"] = "Moved"
    load(pipeline, sim, calendar_days_back=30, calendar_days_ahead=400)
    # the moved event, and the cancelled one written back whole with its mark (in the run itself)
    assert loaded(pipeline).get("calendar_events") == 2
    by_id = {r["id"]: r for r in rows(pipeline, "calendar_events")}
    assert by_id[gone["id"]]["deleted_at"] is not None
    assert by_id[moved["id"]]["summary"] == "Moved"


def test_webhooks_are_skipped_on_starter_without_a_request(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=3, tier="starter")
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    assert "Professional" in get_report("convo").skipped["webhooks"]
    assert not sim.requests(pattern="/webhooks")


def test_deleted_webhook_is_marked(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=2, tier="professional", webhooks=3)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    gone = next(iter(sim.webhooks))
    del sim.webhooks[gone]
    load(pipeline, sim)
    by_id = {r["id"]: r for r in rows(pipeline, "webhooks")}
    assert by_id[gone]["deleted_at"] is not None
    assert sum(1 for r in by_id.values() if r["deleted_at"] is None) == 2


# ------------------------------------------------------------------------------ credentials


def test_secrets_never_reach_logs_tables_or_files(tmp_path, start_sim, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    sim = start_sim(ConvoSimulator, conversations=6, tier="professional")
    signing = "whsec_9f8e7d6c5b4a39281706"
    next(iter(sim.webhooks.values()))["secret"] = signing  # a vendor slip: must not be stored
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    with pytest.raises(Exception) as failed:
        load(pipeline_for(tmp_path, "bad"), sim, api_key=sim.api_key[:-4] + "0000")
    out = capsys.readouterr()
    for secret in (sim.api_key, signing):
        assert secret not in caplog.text + out.out + out.err + explain(failed.value)
        assert grep_tree(tmp_path, secret) == []


def test_wrong_key_fails_at_once_with_a_clear_message(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=3)
    with pytest.raises(Exception) as failed:
        run_strict(pipeline_for(tmp_path), convo(**{**sim.source_config(), "api_key": "convo_wrong"},
                                                 http=FAST))
    assert "authentication failed" in explain(failed.value)
    assert len(sim.requests()) == 1


def test_free_plan_fails_naming_the_plan_needed(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=3, tier="free")
    with pytest.raises(Exception) as failed:
        load(pipeline_for(tmp_path), sim)
    assert "Starter" in explain(failed.value)


def test_check_lists_what_the_plan_and_account_allow(start_sim):
    sim = start_sim(ConvoSimulator, conversations=2, tier="starter", calendar_connected=False)
    access = check(**sim.source_config(), http=FAST)
    assert access["conversations"] is None and access["transcript_segments"] is None
    assert "Professional" in access["webhooks"]
    assert "Google Calendar" in access["calendar_events"]
    assert len(sim.requests()) == 2
    with pytest.raises(AuthError):
        check(base_url=sim.source_config()["base_url"], api_key="convo_nope", http=FAST)
