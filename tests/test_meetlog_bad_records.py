"""Malformed records from the meetlog Export API: each loads or is named, and the run goes on.

meetlog has no timed transcript segments (a transcript's `text` is one string), so the two
segment kinds are what its transcripts have: a completed transcript whose `text` is null,
and a transcript listed without `created_at`, its start.
"""

from __future__ import annotations

from datetime import timedelta

from simulators.base import BAD_RECORD_KINDS
from simulators.meetlog import MeetlogSimulator
from tests.test_meetlog import FAST, by_id, ids_of
from tests.utils import bad_record_outcome, make_pipeline, rows, run

TABLE_OF = dict.fromkeys(BAD_RECORD_KINDS, "transcripts") | {"empty_timestamp": "reports"}


def config(sim: MeetlogSimulator, **kwargs):
    return {**sim.source_config(), "page_size": 4, "http": FAST, **kwargs}


def problems_of(report, table: str, record_id: str) -> str:
    return " ".join(b.problem for b in report.bad_records if b.table == table and record_id in b.record_id)


def assert_good_records_match(pipeline, sim: MeetlogSimulator, exclude: set[str]) -> None:
    transcripts = by_id(pipeline, "transcripts")
    for t in sim.live_transcripts():
        if t.id in exclude:
            continue
        row = transcripts[t.id]
        assert (row["title"], row["status"], row["duration_seconds"]) == (t.title, t.status, t.duration_seconds)
        if t.status == "completed":
            assert (row["text"], row["summary"]) == (t.text, t.summary)
            assert sorted(ids_of(row["report_ids"])) == sorted(sim.report_ids(t.id))
    reports = by_id(pipeline, "reports")
    for r in sim.live_reports():
        if r.id not in exclude:
            assert (reports[r.id]["status"], reports[r.id]["content"]) == (r.status, r.content)
    assert {(m["project_id"], m["transcript_id"]) for m in rows(pipeline, "project_transcripts")} \
        == sim.memberships()


def test_every_kind_of_bad_record_is_loaded_or_named_and_the_good_ones_load_completely(start_sim, tmp_path):
    sim = start_sim(MeetlogSimulator, transcripts=30, projects=3, seed=41, requests_per_minute=None)
    bad = sim.add_bad_records()
    assert set(bad) == set(BAD_RECORD_KINDS)
    pipeline = make_pipeline(tmp_path, "meetlog_bad", dataset="meetlog_bad_data")
    result = run(pipeline, "meetlog", **config(sim))
    assert result.ok, result.error
    report = result.report
    for kind, record_id in bad.items():
        assert bad_record_outcome(pipeline, report, TABLE_OF[kind], record_id), kind

    transcripts, reports = by_id(pipeline, "transcripts"), by_id(pipeline, "reports")
    stored = sim.transcripts
    as_text = transcripts[bad["number_as_string"]]
    assert as_text["duration_seconds"] == stored[bad["number_as_string"]].duration_seconds
    assert "duration_seconds=" in problems_of(report, "transcripts", bad["number_as_string"])
    bad_at = transcripts[bad["bad_timestamp"]]
    assert bad_at["created_at"] is None and bad_at["created_at__v_text"] == "2026-13-45T25:61:00Z"
    assert "created_at=" in problems_of(report, "transcripts", bad["bad_timestamp"])
    empty_at = reports[bad["empty_timestamp"]]
    assert empty_at["created_at"] is None and empty_at["created_at__v_text"] == ""
    assert empty_at["content"] == sim.reports[bad["empty_timestamp"]].content
    assert "created_at=''" in problems_of(report, "reports", bad["empty_timestamp"])
    as_json = transcripts[bad["object_as_json_string"]]
    assert ids_of(as_json["report_ids"]) == sim.report_ids(bad["object_as_json_string"]) != []
    assert "report_ids=" in problems_of(report, "transcripts", bad["object_as_json_string"])
    changed = transcripts[bad["type_change"]]
    assert changed["status"] is None and changed["status__code"] == "completed"  # the object, flattened
    assert "status is not text" in problems_of(report, "transcripts", bad["type_change"])
    assert transcripts[bad["segment_null_text"]]["text"] is None
    assert "text is null" in problems_of(report, "transcripts", bad["segment_null_text"])
    no_start = transcripts[bad["segment_no_start"]]
    assert no_start["created_at"] is None and no_start["text"] == stored[bad["segment_no_start"]].text
    assert "created_at is missing" in problems_of(report, "transcripts", bad["segment_no_start"])

    assert_good_records_match(pipeline, sim, set(bad.values()))

    again = run(pipeline, "meetlog", **config(sim))
    assert again.ok, again.error
    assert not again.rows.get("transcripts") and not again.rows.get("reports"), again.rows
    for kind, record_id in bad.items():
        table = TABLE_OF[kind]
        assert rows(pipeline, table, "count(*) AS n", where=f"id = '{record_id}'")[0]["n"] == 1


def test_an_unreadable_created_at_neither_stops_the_read_early_nor_makes_it_read_everything(
        start_sim, tmp_path):
    sim = start_sim(MeetlogSimulator, transcripts=60, projects=2, processing=0, seed=42,
                    requests_per_minute=None)
    pipeline = make_pipeline(tmp_path, "meetlog_walk", dataset="meetlog_walk_data")
    assert run(pipeline, "meetlog", **config(sim, page_size=3)).ok
    # six new transcripts; the newest one's created_at cannot be read, another's is empty
    now = sim.now().replace(microsecond=0)
    new = [sim.add_transcript(created_at=now + timedelta(minutes=n), status="completed", auto_report=False)
           for n in range(1, 7)]
    new[-1].served = {"created_at": "yesterday"}
    new[2].served = {"created_at": ""}
    sim.clear_log()
    result = run(pipeline, "meetlog", **config(sim, page_size=3))
    assert result.ok, result.error
    transcripts = by_id(pipeline, "transcripts")
    assert all(transcripts[t.id]["text"] == t.text for t in new)  # none missed: no early stop
    pages = [r for r in sim.log if r.path.endswith("/transcripts")]
    # the six new ones fill pages 1-2, page 3 reaches what was loaded; the list has 22 pages
    assert len(pages) == 3, [r.query for r in pages]
    named = {b.record_id: b.problem for b in result.report.bad_records if b.table == "transcripts"}
    assert named[new[-1].id] == "created_at='yesterday' unreadable"
    assert named[new[2].id] == "created_at='' unreadable"


def test_a_project_whose_updated_at_is_unreadable_is_asked_every_run_and_its_moves_still_arrive(
        start_sim, tmp_path):
    sim = start_sim(MeetlogSimulator, transcripts=20, projects=3, seed=43, requests_per_minute=None)
    project = next(p for p in sim.live_projects() if p.transcript_ids)
    project.served = {"updated_at": ""}
    pipeline = make_pipeline(tmp_path, "meetlog_proj", dataset="meetlog_proj_data")
    first = run(pipeline, "meetlog", **config(sim))
    assert first.ok, first.error
    assert "updated_at='' unreadable" in problems_of(first.report, "projects", project.id)
    sim.clear_log()
    second = run(pipeline, "meetlog", **config(sim))
    assert second.ok and not second.rows.get("project_transcripts"), second.rows
    assert [r.path.rsplit("/", 1)[-1] for r in sim.requests("GET", r"/projects/[^/]+$")] == [project.id]
    outsider = next(t.id for t in sim.live_transcripts() if t.id not in project.transcript_ids)
    sim.move(outsider, project.id)
    third = run(pipeline, "meetlog", **config(sim))
    assert third.ok, third.error
    members = {(m["project_id"], m["transcript_id"]) for m in rows(pipeline, "project_transcripts")}
    assert members == sim.memberships() and (project.id, outsider) in members
