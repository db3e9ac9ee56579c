"""meetlog deletions marked inside the source's own run, in a plain `pipeline.run` (no CLI),
on DuckDB, a real Postgres and the filesystem destination: each deleted record keeps every
other column (a transcript its text and `report_ids`), its reports keep theirs, a deleted
project keeps its membership rows; nothing else changes."""

from __future__ import annotations

from simulators.meetlog import MeetlogSimulator
from sources.meetlog import meetlog

from .destinations import assert_marked, without
from .test_meetlog import FAST

MARKED = ("transcripts", "reports", "projects")


def _by_id(warehouse, pipeline, table: str) -> dict[str, dict]:
    return {r["id"]: r for r in warehouse.rows(pipeline, table)}


def _members(warehouse, pipeline, projects: list[str]) -> set[tuple[str, str]]:
    return {(r["project_id"], r["transcript_id"]) for r in warehouse.rows(pipeline, "project_transcripts")
            if r["project_id"] in projects}


def test_deleted_transcripts_and_projects_are_marked_in_a_plain_pipeline_run(start_sim, warehouse):
    sim = start_sim(MeetlogSimulator, transcripts=24, projects=4, seed=5, requests_per_minute=None)
    pipeline = warehouse.pipeline("meetlog_deletions")
    source = lambda: meetlog(**sim.source_config(), sweep_interval_hours=0, page_size=5, http=FAST)  # noqa: E731
    warehouse.run(pipeline, source())
    before = {table: _by_id(warehouse, pipeline, table) for table in MARKED}
    # two completed transcripts with reports (the vendor deletes their reports with them), and
    # two projects that hold transcripts
    gone = {"transcripts": [t.id for t in sim.live_transcripts() if t.status == "completed" and sim.report_ids(t.id)][:2],
            "projects": [p.id for p in sim.live_projects() if p.transcript_ids][:2]}
    gone["reports"] = [rid for tid in gone["transcripts"] for rid in sim.report_ids(tid)]
    assert len(gone["transcripts"]) == len(gone["projects"]) == 2 and gone["reports"]
    members = _members(warehouse, pipeline, gone["projects"])
    assert members
    for tid in gone["transcripts"]:
        sim.delete_transcript(tid)
    for pid in gone["projects"]:
        sim.delete_project(pid)

    warehouse.run(pipeline, source())

    after = {table: _by_id(warehouse, pipeline, table) for table in MARKED}
    for table in ("transcripts", "reports"):
        assert_marked(before[table], after[table], gone[table])
    # projects: the deleted transcripts left the live ones too, whose `updated_at` moved
    projects = after["projects"]
    assert {i for i, r in projects.items() if r["deleted_at"] is not None} == set(gone["projects"])
    for pid in gone["projects"]:
        assert without(projects[pid], "deleted_at", "_dlt_id") == without(before["projects"][pid], "deleted_at", "_dlt_id")
    assert all(after["transcripts"][tid]["text"] and after["transcripts"][tid]["report_ids"]
               for tid in gone["transcripts"])
    assert _members(warehouse, pipeline, gone["projects"]) == members  # a deleted project keeps its membership

    # marked once: the next run loads nothing into these tables
    warehouse.run(pipeline, source())
    counts = pipeline.last_trace.last_normalize_info.row_counts
    assert not set(counts) & {*MARKED, "project_transcripts"}, counts
