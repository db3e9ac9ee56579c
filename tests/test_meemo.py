"""Meemo source against its simulator: full load, incremental runs, late transcripts and
summaries (with and without stage objects), both summary shapes, recordings, organization
selection, deletions, webhooks and their delivery log, upcoming meetings."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dlt

from simulators.meemo import MeemoSimulator, _stage
from sources.meemo import meemo
from tests.utils import make_pipeline, rows, run_strict, table_names

HTTP = {"requests_per_minute": 0, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}
PER_ITEM = r"/meeting/\d+/"
VOLATILE = {"recording_url", "video_url", "assets"}  # signed anew on every call
KEYS = {"transcript_segments": ("meeting_id", "segment_index"), "participants": ("meeting_id", "participant_index"),
        "summaries": ("meeting_id",), "transcripts": ("meeting_id",), "recordings": ("meeting_id",),
        "usage": ("organization_id", "capability_name", "period_start")}


def source(sim: MeemoSimulator, **kw: Any) -> Any:
    """The source pointed at `sim`, with small pages and no pacing."""
    http = {**HTTP, **kw.pop("http", {})}
    return meemo(**sim.source_config(), page_size=kw.pop("page_size", 4), http=http, **kw)


def pipeline(tmp_path: Path, name: str = "meemo") -> dlt.Pipeline:
    return make_pipeline(tmp_path, f"{name}_db", dataset="meemo")


def tables(p: dlt.Pipeline) -> dict[str, list[dict]]:
    """Every table's rows in key order, without dlt's columns and the signed URLs."""
    out = {}
    for table in sorted(table_names(p)):
        key = KEYS.get(table, ("id",))
        found = [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows(p, table)]
        out[table] = sorted(found, key=lambda r: tuple(str(r.get(k)) for k in key))
    return out


def expects_transcript(sim: MeemoSimulator, m: Any) -> bool:
    """Whether a run loads this meeting's transcript: once its stage says completed, or, for
    meetings without stage objects, once it answers segments or its summary is complete."""
    return sim.transcript_ready(m) and (not m.old_build or bool(sim.served_segments(m)) or m.summary_complete)


def loaded(p: dlt.Pipeline) -> dict[str, int]:
    """Rows the last run loaded, per table (dlt's own tables left out)."""
    counts = p.last_trace.last_normalize_info.row_counts
    return {t: n for t, n in counts.items() if not t.startswith("_dlt")}


def test_full_load_equals_the_simulators_data_for_two_organizations(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=10, seed=3)
    p = pipeline(tmp_path)
    run_strict(p, source(sim, page_size=3))
    t = tables(p)

    assert [(o["id"], o["name"], o["organization_id"]) for o in t["organizations"]] == \
        [(o["id"], o["name"], o["id"]) for o in sim.orgs.values()]
    visible = sim.visible()
    assert {m["id"] for m in t["meetings"]} == {m.id for m in visible} and len(visible) == 28
    by_id = {m["id"]: m for m in t["meetings"]}
    for m in visible:
        row, detail = by_id[m.id], sim.detail(m)
        assert (row["title"], row["status"], row["organization_id"], row["host__email"], row["duration_seconds"]) == \
            (detail["title"], detail["status"], m.org_id, m.host["email"], detail["duration_seconds"])
        assert row["transcription__status"] == (sim.list_item(m).get("transcription") or {}).get("status")
        assert row["host_name"] == m.host["name"]  # also where the detail has none
        assert row["deleted_at"] is None
    assert {m.old_build for m in visible} == {True, False}
    # transcripts: only completed ones, in the API's order and indices as served
    segments: dict[str, list] = {}
    for s in t["transcript_segments"]:
        segments.setdefault(s["meeting_id"], []).append(s)
    ready = [m for m in visible if expects_transcript(sim, m)]
    assert set(segments) == {str(m.id) for m in ready if sim.served_segments(m)}
    for m in ready:
        got = sorted(segments.get(str(m.id), []), key=lambda s: s["segment_index"])
        assert [(s["segment_index"], s["speaker"], s["start_seconds"], s["end_seconds"], s["text"],
                 s["organization_id"]) for s in got] == \
            [(i, s["speaker"], s["start_time"], s["end_time"], s["text"], m.org_id)
             for i, s in enumerate(sim.served_segments(m))]
    totals = {int(r["meeting_id"]): r for r in t["transcripts"]}
    assert set(totals) == {m.id for m in ready}
    withheld = {m.id: sum(s["confidential"] for s in m.segments) for m in ready}
    assert {k: (v["total_segments"], v["withheld_segments"]) for k, v in totals.items()} == \
        {m.id: (len(m.segments), withheld[m.id]) for m in ready}
    assert any(withheld.values()), "the simulator should hide some confidential segments"
    # summaries of completed meetings; participants of every meeting
    assert {r["meeting_id"] for r in t["summaries"]} == {str(m.id) for m in visible if sim.summary_ready(m)}
    assert [(r["meeting_id"], r["participant_index"], r.get("email"), r["name"]) for r in t["participants"]] == \
        sorted([(str(m.id), i, p.get("email"), p["name"]) for m in visible for i, p in enumerate(m.participants)],
               key=lambda r: (str(r[0]), str(r[1])))
    assert {(r["id"], r["organization_id"]) for r in t["topics"]} == \
        {(topic["id"], org) for org, topics in sim.topics.items() for topic in topics}
    assert {r["id"] for r in t["webhooks"]} == set(sim.webhooks)
    assert {r["id"] for r in t["webhook_events"]} == {e["id"] for e in sim.events}
    assert "recordings" not in t  # only when asked for
    # usage: twelve months per organization and capability; this month as the API counts it
    today = sim.now().date()
    this_month = [r for r in t["usage"] if r["period_start"] == today.replace(day=1)]
    expected = [u for org in sim.orgs for u in sim.usage(org, today.replace(day=1), this_month[0]["period_end"])]
    assert sorted((r["organization_id"], r["capability_name"], r["usage"]) for r in this_month) == \
        sorted((u["organization_id"], u["capability_name"], u["usage"]) for u in expected)
    assert len(t["usage"]) == 2 * 7 * 12
    assert {(r["id"], r["failure_count"], r["last_failure_reason"]) for r in t["webhooks"]} == \
        {(h["id"], h["failure_count"], h["last_failure_reason"]) for h in sim.webhooks.values()}
    assert [(r["id"], r["event_id"], r["organization_id"]) for r in t["upcoming_meetings"]] == \
        sorted((e["id"], e["event_id"], e["organization_id"]) for e in sim.upcoming(set(sim.orgs), 100))
    # every row says which organization it belongs to
    assert all(r.get("organization_id") is not None for table in t.values() for r in table)


def test_second_run_makes_only_list_requests_and_loads_nothing(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, meetings=5, seed=4)
    p = pipeline(tmp_path)
    run_strict(p, source(sim, include_recordings=True))
    first_run = len(sim.log)
    assert sim.requests("GET", PER_ITEM)
    sim.clear_log()
    run_strict(p, source(sim, include_recordings=True))
    assert sim.requests("GET", PER_ITEM) == []
    assert loaded(p) == {}
    paths = {r.path for r in sim.log}
    assert paths <= {"/api/auth/token/", "/api/v1/external/webhooks/available-organizations/",
                     "/api/v1/external/meeting/", "/api/v1/external/topics/", "/api/v1/external/webhooks/",
                     "/api/v1/external/webhook-events/", "/api/v1/external/usage/",
                     "/api/v1/external/calendar/upcoming-meetings/"}
    print(f"\nfirst run {first_run} requests, second run {len(sim.log)} requests (list requests only)")


def test_meetings_whose_transcript_or_summary_completes_between_runs_arrive_complete(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=10, processing_share=0.5, span_days=10, seed=5)
    p = pipeline(tmp_path)
    run_strict(p, source(sim))
    waiting = [m for m in sim.visible() if m.status == "past" and not sim.transcript_ready(m)]
    assert {m.old_build for m in waiting} == {True, False}
    assert len(waiting) >= 3
    have = {r["meeting_id"] for r in rows(p, "transcripts")}
    assert not have & {str(m.id) for m in waiting}
    for m in waiting:
        sim.complete(m.id)
    fresh = sim.add_meeting(1, state="processing")  # a new meeting, still being transcribed
    sim.clear_log()
    run_strict(p, source(sim))

    ids = {m.id for m in waiting}
    assert {int(r.path.split("/")[5]) for r in sim.requests("GET", PER_ITEM)} == ids | {fresh.id}
    assert {str(i) for i in ids} <= {r["meeting_id"] for r in rows(p, "transcripts")}
    assert {str(i) for i in ids} <= {r["meeting_id"] for r in rows(p, "summaries") if r["summary"]}
    for m in waiting:
        got = rows(p, "transcript_segments", where=f"meeting_id = '{m.id}'", order_by="segment_index")
        assert [s["text"] for s in got] == [s["text"] for s in sim.served_segments(m)]
        status = rows(p, "meetings", "transcription__status, summarization__status", where=f"id = {m.id}")
        done = None if m.old_build else "completed"  # older builds send no stage objects
        assert status == [{"transcription__status": done, "summarization__status": done}]
    assert rows(p, "meetings", "status", where=f"id = {fresh.id}") == [{"status": "past"}]
    # the new meeting finishes too: the next run brings its transcript, nothing else
    sim.complete(fresh.id)
    sim.clear_log()
    run_strict(p, source(sim))
    assert {r.path for r in sim.requests("GET", PER_ITEM)} == \
        {f"/api/v1/external/meeting/{fresh.id}/{part}"
         for part in ("", "participants/", "transcript/", "summary/", "summary-with-video/")}
    assert rows(p, "transcripts", "meeting_id", where=f"meeting_id = '{fresh.id}'") == [{"meeting_id": str(fresh.id)}]


def test_unfinished_meetings_older_than_the_day_cursor_are_rechecked_when_due(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, meetings=3, upcoming=0, legacy=0, seed=6)
    now = sim.now()
    upcoming = [sim.add_meeting(org, start=now + timedelta(days=2), created_at=now - timedelta(days=6),
                                state="upcoming") for org in (1, 2)]
    sim.add_meeting(1, created_at=now)  # the day cursor now stands at today
    p = pipeline(tmp_path)
    run_strict(p, source(sim, sweep_interval_hours=1000))
    sim.advance(days=4)  # the upcoming meetings (created days before) have now taken place
    for m in upcoming:
        sim.end(m.id)
        sim.complete(m.id)
    sim.clear_log()
    run_strict(p, source(sim, sweep_interval_hours=1000))  # no sweep: only the day cursor
    ids = ", ".join(str(m.id) for m in upcoming)
    assert rows(p, "meetings", "status", where=f"id in ({ids})") == [{"status": "past"}] * len(upcoming)
    texts = ", ".join(f"'{m.id}'" for m in upcoming)
    assert len(rows(p, "transcripts", where=f"meeting_id in ({texts})")) == len(upcoming)
    filters = [r.query for r in sim.requests("GET", r"/meeting/$") if r.query.get("page") in (None, "1")]
    assert any("start_after" in q for q in filters), "unfinished meetings are found by their start day"
    assert all({"created_after", "start_after"} & set(q) for q in filters), "no unbounded listing between sweeps"


def test_legacy_and_markdown_summaries_both_read_as_text(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=3, legacy=2, seed=7)
    p = pipeline(tmp_path)
    run_strict(p, source(sim))
    got = {int(r["meeting_id"]): r for r in rows(p, "summaries")}
    legacy = [m for m in sim.visible() if isinstance(m.summary, dict) and sim.summary_ready(m)]
    markdown = [m for m in sim.visible() if isinstance(m.summary, str) and sim.summary_ready(m)]
    assert legacy and markdown
    for m in markdown:
        assert (got[m.id]["summary"], got[m.id]["summary_format"], got[m.id]["summary_json"]) == \
            (m.summary, "markdown", None)
    for m in legacy:
        row = got[m.id]
        assert row["summary_format"] == "legacy_json"
        assert json.loads(row["summary_json"]) == m.summary  # the original object, kept whole
        text = row["summary"]
        assert text.startswith(m.summary["overview"])
        for section in m.summary["sections"]:
            assert f"## {section['title']}" in text
            for item in section.get("items", []):
                assert f"- {item}" in text
            if "content" in section:
                assert section["content"] in text
    # an analyst reads both kinds with one query and no JSON parsing
    with p.sql_client() as client, client.execute_query(
            "SELECT count(*) FROM summaries WHERE summary IS NULL AND summary_json IS NOT NULL") as cur:
        assert cur.fetchone()[0] == 0


def test_recordings_load_only_when_asked_and_new_signed_urls_change_nothing(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=5, upcoming=0, legacy=0, seed=8)
    p = pipeline(tmp_path)
    run_strict(p, source(sim))
    assert "recordings" not in table_names(p) and not sim.requests("GET", r"/recording/$")
    run_strict(p, source(sim, include_recordings=True))
    with_recording = [m for m in sim.visible() if m.has_recording and (m.stages["recording"] or {}).get("status") == "completed"]
    assert {r["meeting_id"] for r in rows(p, "recordings")} == {str(m.id) for m in with_recording}
    assert loaded(p) == {"recordings": len(with_recording)}  # nothing else looked changed
    before = {r["meeting_id"]: r["recording_url"] for r in rows(p, "recordings")}
    # the vendor re-processes one recording: it is fetched again once complete, with new URLs
    m = next(m for m in with_recording if not m.old_build)
    done = m.stages["recording"]
    m.stages["recording"] = _stage("in_progress", "Re-encoding")
    run_strict(p, source(sim, include_recordings=True, sweep_interval_hours=0))
    m.stages["recording"] = done
    sim.clear_log()
    run_strict(p, source(sim, include_recordings=True, sweep_interval_hours=0))
    assert [r.path for r in sim.requests("GET", r"/recording/$")] == [f"/api/v1/external/meeting/{m.id}/recording/"]
    assert loaded(p) == {"meetings": 1}  # a fresh signed URL alone is not a change
    assert {r["meeting_id"]: r["recording_url"] for r in rows(p, "recordings")} == before


def test_organization_ids_limits_the_load_and_widening_it_later_adds_the_rest(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=3, meetings=2, upcoming=1, legacy=0, seed=9)
    p = pipeline(tmp_path)
    run_strict(p, source(sim, organization_ids=[2]))
    for table in ("organizations", "meetings", "topics", "webhooks", "webhook_events", "usage", "participants"):
        assert {r["organization_id"] for r in rows(p, table)} == {2}, table
    assert {int(r.query["organization_id"]) for r in sim.requests("GET", r"/meeting/$")} == {2}
    run_strict(p, source(sim))  # default: every available organization
    assert {r["id"]: r["deleted_at"] for r in rows(p, "organizations")} == {1: None, 2: None, 3: None}
    assert {r["organization_id"] for r in rows(p, "meetings")} == {1, 2, 3}
    assert {r["id"] for r in rows(p, "meetings")} == {m.id for m in sim.visible()}


def test_deleted_and_renamed_meetings_are_caught_by_the_sweep(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=6, upcoming=0, legacy=0, seed=10)
    p = pipeline(tmp_path)
    run_strict(p, source(sim))
    old = [m for m in sim.visible() if m.created_at < sim.now() - timedelta(days=5)]
    gone, renamed = old[0], old[1]
    sim.delete(gone.id)
    sim.rename(renamed.id, "Перенесено: quarterly review")
    run_strict(p, source(sim))  # between sweeps: old meetings are not re-read
    assert rows(p, "meetings", "deleted_at", where=f"id = {gone.id}") == [{"deleted_at": None}]
    sim.advance(hours=25)
    run_strict(p, source(sim))  # the daily sweep
    marked = {r["id"] for r in rows(p, "meetings", "id", where="deleted_at IS NOT NULL")}
    assert marked == {gone.id}
    assert rows(p, "meetings", "title", where=f"id = {renamed.id}") == [{"title": "Перенесено: quarterly review"}]


def test_new_and_redelivered_webhook_events_arrive_without_reloading_old_ones(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=1, upcoming=0, legacy=0, webhooks=1, events=(12, 12), seed=11)
    p = pipeline(tmp_path)
    run_strict(p, source(sim))
    hook = next(iter(sim.webhooks))
    pending = sim.add_event(hook, status="RETRYING")
    run_strict(p, source(sim))
    assert loaded(p) == {"webhook_events": 1}
    sim.deliver(pending["id"])
    new = sim.add_event(hook, status="SUCCESS")
    sim.clear_log()
    run_strict(p, source(sim))
    assert loaded(p) == {"webhook_events": 2}
    got = {r["id"]: r["status"] for r in rows(p, "webhook_events", where=f"id in ({pending['id']}, {new['id']})")}
    assert got == {pending["id"]: "SUCCESS", new["id"]: "SUCCESS"}
    # newest first, read back only to the lookback: not every page of the delivery log
    event_pages = sim.requests("GET", r"/webhook-events/$")
    assert len([r for r in event_pages if int(r.query["webhook_id"]) == hook]) < 14 / 4
    assert "secret_key" not in {c for r in rows(p, "webhooks") for c in r}


def test_start_date_limits_meetings_by_creation_day(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=8, legacy=2, seed=12)
    p = pipeline(tmp_path)
    start = sim.now().date() - timedelta(days=5)
    run_strict(p, source(sim, start_date=start.isoformat()))
    created = {r["id"]: r["created_at"].date() for r in rows(p, "meetings")}
    assert created and min(created.values()) >= start - timedelta(days=1)
    assert all(m.id in created for m in sim.visible() if m.created_at.date() > start)
    assert min(r["period_start"] for r in rows(p, "usage")) == date(start.year, start.month, 1)
