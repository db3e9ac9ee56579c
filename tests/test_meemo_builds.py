"""Meemo as its API really is (observed-responses.md, section 3, checked against the vendor's
SDK): meetings of older builds without stage objects next to current ones, an empty
transcript that is not final, upper-case webhook-event statuses, failure counts only in a
webhook's detail, summary-with-video, upcoming meetings, the wait of a 429 given only in the
error body, the three error body shapes, and malformed records."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import orjson
import pytest

from pipelines.runner import run_source
from simulators.base import BAD_RECORD_KINDS
from simulators.meemo import TOKEN_PATH, MeemoSimulator
from sources._common.errors import AuthError, BadRequestError, NotFoundError
from sources._common.http import ApiClient, HttpSettings
from sources._common.ledger import expand, records_of
from sources._common.report import get_report, new_report
from tests.test_meemo import HTTP, PER_ITEM, expects_transcript, loaded, pipeline, source, tables
from tests.utils import bad_record_outcome, rows, run_strict

SIGNED = ("cdn.example", "sig=")  # how the simulator's signed URLs look


def ledger_of(p) -> dict:
    """The meetings' ledger (`sources/_common/ledger.py`): records (packed: `records_of`), cursor, last_sweep_at."""
    return p.state["sources"]["meemo"]["ledger"]["meetings"]


def pending(p, mid: int) -> bool:
    """The meeting is kept pending: the vendor is not done with it, and the listing re-lists
    it by its start day (the cursor's `starts`)."""
    book = ledger_of(p)
    return bool(expand(records_of(book)[str(mid)]).get("waiting")) and str(mid) in book["cursor"].get("starts", {})


def transcript_rechecked(p, mid: int) -> bool:
    """An empty transcript is owed again later, with back-off."""
    record = expand(records_of(ledger_of(p))[str(mid)])
    return "transcript" in record.get("owed", {}) and "check_at" in record


def segments_of(p, mid: int) -> list[dict]:
    return rows(p, "transcript_segments", where=f"meeting_id = '{mid}'", order_by="segment_index")


def test_meetings_with_and_without_stage_objects_load_every_transcript_and_summary(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=9, processing_share=0.0, upcoming=1, legacy=1,
                    old_build_every=2, seed=50)
    p = pipeline(tmp_path)
    run_strict(p, source(sim, page_size=5))
    visible = sim.visible()
    old = [m for m in visible if m.old_build]
    assert old and len(old) < len(visible)
    assert all("transcription" not in sim.detail(m) and "organization_id" not in sim.list_item(m) for m in old)
    # every transcript the simulator holds, segment by segment, for both builds
    done = [m for m in visible if expects_transcript(sim, m)]
    assert {str(m.id) for m in old if sim.served_segments(m)} <= {str(m.id) for m in done}
    got = {r["meeting_id"] for r in rows(p, "transcripts")}
    assert got == {str(m.id) for m in done}
    for m in done:
        assert [(s["segment_index"], s["speaker"], s["start_seconds"], s["text"], s["organization_id"])
                for s in segments_of(p, m.id)] == \
            [(i, s["speaker"], s["start_time"], s["text"], m.org_id) for i, s in enumerate(sim.served_segments(m))]
    # every summary, with what summary-with-video adds, never its signed URLs
    summaries = {int(r["meeting_id"]): r for r in rows(p, "summaries")}
    assert set(summaries) == {m.id for m in visible if sim.summary_ready(m)}
    assert {m.id for m in old if sim.summary_ready(m)} <= set(summaries)
    for mid, row in summaries.items():
        m, rich = sim.meetings[mid], sim.summary_with_video(sim.meetings[mid])
        assert (row["record_id"], row["video_id"], row["has_video"]) == (rich["record_id"], rich["video_id"], True)
        cited = orjson.loads(row["citations"]) if row["citations"] else None
        expected = None if rich["citations"] is None else [
            {k: v for k, v in c.items() if k != "inline_embed"} for c in rich["citations"]]
        assert cited == expected
        if isinstance(m.summary, str):
            assert cited and all(c["placeholder"].startswith(f"[video_meeting_{mid}@") for c in cited)
            assert row["placeholder_message_markdown"].startswith(f"[video_meeting_{mid}]")
    swv = sim.requests("GET", r"/summary-with-video/$")
    assert len(swv) == len(summaries)  # one request per summary loaded
    everything = orjson.dumps(tables(p), default=str).decode() + orjson.dumps(rows(p, "summaries"), default=str).decode()
    assert not any(mark in everything for mark in SIGNED)
    assert {r["id"]: r["organization_id"] for r in rows(p, "meetings")} == {m.id: m.org_id for m in visible}


def test_an_empty_transcript_without_stage_objects_is_fetched_again_later_and_arrives(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=3, upcoming=0, legacy=0, processing_share=0.0,
                    webhooks=0, seed=51)
    now = sim.now()
    waiting = sim.add_meeting(1, start=now - timedelta(days=3, hours=2), created_at=now - timedelta(days=3, hours=3),
                              state="processing", old_build=True)
    sim.add_meeting(1, created_at=now, state="completed", old_build=False)  # the day cursor stands at today
    p = pipeline(tmp_path)
    keep_cursor = {"sweep_interval_hours": 1000}
    transcript = rf"/meeting/{waiting.id}/transcript/$"
    run_strict(p, source(sim, **keep_cursor))
    assert len(sim.requests("GET", transcript)) == 1  # asked once: it answers an empty list
    assert rows(p, "transcripts", where=f"meeting_id = '{waiting.id}'") == []
    assert pending(p, waiting.id)  # not dropped: nothing is in yet
    sim.clear_log()
    run_strict(p, source(sim, **keep_cursor))  # right after: not due again yet
    assert sim.requests("GET", transcript) == [] and loaded(p) == {}
    sim.transcribe(waiting.id)  # done at the vendor; an older build's list item does not change
    assert sim.list_item(waiting) == {**sim.list_item(waiting), "summary_complete": False}
    sim.advance(minutes=31)
    sim.clear_log()
    run_strict(p, source(sim, **keep_cursor))
    assert len(sim.requests("GET", transcript)) == 1
    assert [s["text"] for s in segments_of(p, waiting.id)] == [s["text"] for s in sim.served_segments(waiting)]
    assert sim.served_segments(waiting)
    assert pending(p, waiting.id)  # its summary is still to come
    sim.complete(waiting.id)  # summary_complete: the list item changes, re-listed by start day
    sim.clear_log()
    run_strict(p, source(sim, **keep_cursor))
    assert any("start_after" in r.query for r in sim.requests("GET", r"/meeting/$"))
    assert rows(p, "summaries", "meeting_id, summary", where=f"meeting_id = '{waiting.id}'") == \
        [{"meeting_id": str(waiting.id), "summary": waiting.summary}]
    assert not pending(p, waiting.id)
    assert not transcript_rechecked(p, waiting.id)


def test_re_checks_of_an_empty_transcript_grow_apart_and_stop_after_their_window(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=0, upcoming=0, legacy=0, webhooks=0, seed=52)
    silent = sim.add_meeting(1, state="manual", old_build=True)  # ended; no transcript will ever come
    p = pipeline(tmp_path)
    checks = []
    for _ in range(14):  # hourly runs for 14 hours
        sim.clear_log()
        run_strict(p, source(sim))
        checks.append(len(sim.requests("GET", rf"/meeting/{silent.id}/transcript/$")))
        sim.advance(hours=1)
    assert checks[:2] == [1, 1] and sum(checks) == 5  # at 0, 1, 2, 4 and 8 hours (30 min, doubling)
    sim.advance(days=15)
    for _ in range(3):
        run_strict(p, source(sim))
        sim.advance(days=1)
    sim.clear_log()
    run_strict(p, source(sim))
    assert sim.requests("GET", rf"/meeting/{silent.id}/transcript/$") == []
    # given up: no re-check owed; done for its not-final version, so asked again only once
    # the summary completes
    record = expand(records_of(ledger_of(p))[str(silent.id)])
    assert not transcript_rechecked(p, silent.id) and record["done"]["transcript"] == "pending"
    assert "transcripts/1" in get_report("meemo").waiting


def test_webhook_events_with_upper_case_final_statuses_are_not_re_read_every_run(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=1, upcoming=0, legacy=0, webhooks=2,
                    events=(30, 30), span_days=10, seed=53)
    assert {e["status"] for e in sim.events} == {"SUCCESS", "FAILED"}
    assert {h["old_build"] for h in sim.webhooks.values()} == {True, False}  # with and without `next`
    p = pipeline(tmp_path)
    run_strict(p, source(sim))
    assert {r["id"] for r in rows(p, "webhook_events")} == {e["id"] for e in sim.events}
    sim.clear_log()
    run_strict(p, source(sim))
    per_hook = {h: len([r for r in sim.requests("GET", r"/webhook-events/$") if r.query["webhook_id"] == str(h)])
                for h in sim.webhooks}

    def pages_back_to(hook: int, hours: float) -> int:
        """Pages of 4, newest first, until one lies wholly before `hours` before the newest event."""
        created = sorted((datetime.fromisoformat(e["created_at"].replace("Z", "+00:00"))
                          for e in sim.events if e["webhook_id"] == hook), reverse=True)
        pages = [created[i:i + 4] for i in range(0, len(created), 4)]
        cutoff = created[0] - timedelta(hours=hours)
        return next((n + 1 for n, page in enumerate(pages) if page[0] < cutoff), len(pages))

    # back to a day before the newest event (the lookback), not to a week (events not final)
    assert per_hook == {h: pages_back_to(h, 24) for h in sim.webhooks}
    assert all(pages_back_to(h, 24) < pages_back_to(h, 24 * 7) for h in sim.webhooks)
    assert loaded(p) == {}


def test_webhook_failure_count_is_read_from_its_detail_only_when_something_says_it_changed(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=1, upcoming=0, legacy=0, webhooks=2, events=(2, 2),
                    seed=54)
    detail = r"/webhooks/\d+/$"
    p = pipeline(tmp_path)
    run_strict(p, source(sim))
    assert len(sim.requests("GET", detail)) == 2
    counts = lambda: {r["id"]: (r["failure_count"], r["last_failure_reason"]) for r in rows(p, "webhooks")}  # noqa: E731
    assert counts() == {h["id"]: (h["failure_count"], h["last_failure_reason"]) for h in sim.webhooks.values()}
    sim.clear_log()
    run_strict(p, source(sim))
    assert sim.requests("GET", detail) == []  # nothing new: no detail calls
    hook, other = list(sim.webhooks)
    sim.add_event(hook, status="FAILED")  # a failed delivery: its webhook's count moved
    sim.clear_log()
    run_strict(p, source(sim))
    assert [r.path for r in sim.requests("GET", detail)] == [f"/api/v1/external/webhooks/{hook}/"]
    assert counts()[hook] == (sim.webhooks[hook]["failure_count"], "HTTP 500 from target")
    assert loaded(p) == {"webhooks": 1, "webhook_events": 1}
    sim.webhooks[other]["failure_count"] += 5  # only the detail shows it: the daily sweep catches it
    run_strict(p, source(sim))
    assert counts()[other][0] == sim.webhooks[other]["failure_count"] - 5
    sim.advance(hours=25)
    sim.clear_log()
    run_strict(p, source(sim))
    assert len(sim.requests("GET", detail)) == 2
    assert counts()[other][0] == sim.webhooks[other]["failure_count"]
    assert "secret_key" not in {c for r in rows(p, "webhooks") for c in r}


def test_a_429_whose_wait_is_only_in_the_error_body_is_waited_out(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=4, upcoming=0, legacy=0, seed=55)
    clean = pipeline(tmp_path, "clean")
    run_strict(clean, source(sim))
    sim.throttle(2, retry_after_seconds=1)  # backoff in these tests is 0.01-0.05 s: only the body says 1 s
    throttled = pipeline(tmp_path, "throttled")
    run_strict(throttled, source(sim))
    assert len(sim.throttled_at) == 2 and sim.status_counts()[429] == 2
    assert sim.resumed_at - sim.throttled_at[0] >= 1.9  # waited 1 s after each
    assert tables(throttled) == tables(clean)


def test_upcoming_meetings_load_and_an_event_cancelled_before_it_starts_is_marked_deleted(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=1, upcoming=0, legacy=0, webhooks=0,
                    calendar_organizations=1, seed=56)
    now = sim.now()
    soon = sim.add_calendar_event(1, start=now + timedelta(hours=2), title="Standup")
    p = pipeline(tmp_path)
    run_strict(p, source(sim))
    listed = {e["id"]: e for e in sim.upcoming({1, 2}, 100)}
    got = {r["id"]: r for r in rows(p, "upcoming_meetings")}
    assert set(got) == set(listed) and {r["organization_id"] for r in got.values()} == {1}  # org 2: no calendar
    assert got[soon["id"]]["summary"] == "Standup" and got[soon["id"]]["start_time"].isoformat().startswith(
        soon["start_time"][:16])
    cancelled = next(e for e in listed.values() if e["id"] != soon["id"])
    sim.cancel_calendar_event(cancelled["id"])
    sim.advance(hours=3)  # the standup took place: no longer upcoming
    run_strict(p, source(sim))
    marks = {r["id"]: r["deleted_at"] for r in rows(p, "upcoming_meetings")}
    assert marks[soon["id"]] is None and marks[cancelled["id"]] is not None
    assert set(marks) == set(listed)  # rows stay; the past one as last seen
    run_strict(p, source(sim))
    assert loaded(p) == {}


def test_error_messages_of_the_three_body_shapes_are_read(start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=1, upcoming=0, legacy=0, seed=57)
    report = new_report("meemo-errors")
    with ApiClient(sim.base_url, None, report, HttpSettings(max_retries=0)) as anonymous:
        with pytest.raises(AuthError) as oauth:
            anonymous.request("POST", TOKEN_PATH, data={"grant_type": "client_credentials",
                                                         "client_id": sim.client_id, "client_secret": "nope"})
        token = anonymous.request("POST", TOKEN_PATH, data={
            "grant_type": "client_credentials", "client_id": sim.client_id,
            "client_secret": sim.client_secret}).body["access_token"]
    assert "Client authentication failed." in oauth.value.message
    with ApiClient(sim.base_url, None, report, HttpSettings(max_retries=0),
                   headers={"Authorization": f"Bearer {token}"}) as client:
        with pytest.raises(NotFoundError) as newer:
            client.get("api/v1/external/meeting/999999/summary-with-video/")
        with pytest.raises(BadRequestError) as fields:
            client.get("api/v1/external/usage/", {"start_date": "2026-05-02", "end_date": "2026-05-01"})
        with pytest.raises(BadRequestError) as listed:
            client.get("api/v1/external/calendar/upcoming-meetings/", {"limit": 500})
        with pytest.raises(NotFoundError) as detail:
            client.get("api/v1/external/meeting/999999/")
    assert newer.value.message.endswith("Meeting not found.")
    assert fields.value.message.endswith("end_date: end_date must not be before start_date.")
    assert listed.value.message.endswith("limit must be between 1 and 100")
    assert detail.value.message.endswith("Not found.")


TABLE_OF_KIND = {"segment_null_text": "transcript_segments", "segment_no_start": "transcript_segments"}
SEGMENT_KEY = "meeting_id || '#' || CAST(segment_index AS TEXT)"


def test_bad_records_never_fail_a_run_and_are_kept_or_named(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=4, upcoming=0, legacy=0, processing_share=0.0,
                    seed=58)
    bad = sim.add_bad_records()
    assert set(bad) == set(BAD_RECORD_KINDS)
    p = pipeline(tmp_path)
    config = {**sim.source_config(), "page_size": 4, "http": HTTP}
    started = time.monotonic()
    result = run_source("meemo", pipeline=p, **config)
    assert result.ok, result.error
    for kind, record_id in bad.items():
        table = TABLE_OF_KIND.get(kind, "meetings")
        key = SEGMENT_KEY if table == "transcript_segments" else "id"
        assert bad_record_outcome(p, result.report, table, record_id, key=key), (kind, record_id)
    named = {(b.table, b.record_id.split("#")[0]) for b in result.report.bad_records}
    for kind in ("number_as_string", "bad_timestamp", "empty_timestamp", "object_as_json_string", "type_change"):
        assert ("meetings", bad[kind]) in named, kind  # loaded, and named with what was wrong
    meetings = {r["id"]: r for r in rows(p, "meetings")}
    number, as_text, changed = (meetings[int(bad[k])] for k in ("number_as_string", "object_as_json_string",
                                                                 "type_change"))
    assert number["duration_seconds"] == 3600.5
    assert orjson.loads(as_text["calendar_event"])["event_id"].startswith("evt_")
    assert changed["participant_count"] is None and orjson.loads(changed["participant_count__raw"]) == \
        {"internal": 3, "guests": 1}
    assert meetings[int(bad["bad_timestamp"])]["start_time__raw"] == "2026-13-45T25:61:00Z"
    assert meetings[int(bad["empty_timestamp"])]["created_at__raw"] == ""
    # their summaries too: keywords sent as JSON text, notes as a list
    summaries = {int(r["meeting_id"]): r for r in rows(p, "summaries")}
    assert orjson.loads(summaries[int(bad["number_as_string"])]["keywords"]) == \
        sim.meetings[int(bad["number_as_string"])].summary_keywords
    assert orjson.loads(summaries[int(bad["type_change"])]["notes"]) == ["Follow up with finance", "Send the deck"]
    assert {("summaries", bad["number_as_string"]), ("summaries", bad["type_change"])} <= named
    segment = rows(p, "transcript_segments", where=f"{SEGMENT_KEY} = '{bad['segment_no_start']}'")[0]
    assert segment["start_seconds"] is None and segment["text"]
    # the good records still load completely
    visible = sim.visible()
    assert set(meetings) == {m.id for m in visible}
    assert {r["meeting_id"] for r in rows(p, "transcripts")} == {str(m.id) for m in visible if expects_transcript(sim, m)}
    # a second run neither fails nor loads them again
    again = run_source("meemo", pipeline=p, **config)
    assert again.ok and again.rows == {}
    assert sim.requests("GET", PER_ITEM)
    print(f"\n{len(result.report.bad_records)} bad records named in {time.monotonic() - started:.1f}s")
