"""meetlog: full load, incremental runs, late data, reports on old transcripts, projects, deletes."""

from __future__ import annotations

import json
from typing import Any

import dlt
import pytest

from simulators.meetlog import MeetlogSimulator
from sources._common.report import get_report
from sources.meetlog import meetlog
from tests.utils import make_pipeline, rows, run_strict

FAST = {"requests_per_minute": 0, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}
TABLES = ("transcripts", "reports", "projects", "project_transcripts")


def pipeline_for(tmp_path, name: str = "meetlog") -> dlt.Pipeline:
    return make_pipeline(tmp_path, name, dataset=f"{name}_data")


def load(pipeline: dlt.Pipeline, sim: MeetlogSimulator, **kw: Any) -> Any:
    kw.setdefault("page_size", 4)
    kw.setdefault("http", FAST)
    return run_strict(pipeline, meetlog(**sim.source_config(), **kw))


def by_id(pipeline: dlt.Pipeline, table: str) -> dict[str, dict]:
    return {r["id"]: r for r in rows(pipeline, table)}


def ids_of(value: Any) -> list[str]:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def assert_matches_sim(pipeline: dlt.Pipeline, sim: MeetlogSimulator) -> None:
    """Live rows equal the simulator's data; rows of deleted records carry `deleted_at`."""
    transcripts = by_id(pipeline, "transcripts")
    live = {t.id: t for t in sim.live_transcripts()}
    assert {i for i, r in transcripts.items() if r["deleted_at"] is None} == set(live)
    for tid, t in sim.transcripts.items():
        if t.deleted and tid in transcripts:
            assert transcripts[tid]["deleted_at"] is not None
    for tid, t in live.items():
        row = transcripts[tid]
        assert (row["title"], row["status"], row["duration_seconds"]) == (t.title, t.status, t.duration_seconds)
        if t.status == "completed":
            assert (row["text"], row["summary"]) == (t.text, t.summary)
            assert sorted(ids_of(row["report_ids"])) == sorted(sim.report_ids(tid))
        else:
            assert row["text"] is None
    reports = by_id(pipeline, "reports")
    live_reports = {r.id: r for r in sim.live_reports()}
    assert {i for i, r in reports.items() if r["deleted_at"] is None} == set(live_reports)
    for rid, r in live_reports.items():
        row = reports[rid]
        assert (row["transcription_id"], row["status"], row["content"]) == (r.transcription_id, r.status, r.content)
    for rid, r in sim.reports.items():
        if r.deleted and rid in reports:
            assert reports[rid]["deleted_at"] is not None
    projects = by_id(pipeline, "projects")
    live_projects = {p.id: p for p in sim.live_projects()}
    assert {i for i, r in projects.items() if r["deleted_at"] is None} == set(live_projects)
    assert all(projects[i]["name"] == p.name for i, p in live_projects.items())
    members = {(r["project_id"], r["transcript_id"]) for r in rows(pipeline, "project_transcripts")
               if r["project_id"] in live_projects}
    assert members == sim.memberships()


def detail_paths(sim: MeetlogSimulator) -> list[str]:
    return sorted(r.path.rsplit("/", 2)[-2] + "/" + r.path.rsplit("/", 1)[-1]
                  for r in sim.requests("GET", r"/export/\w+/[^/]+$"))


def list_pages(sim: MeetlogSimulator) -> list[tuple[str, str]]:
    return sorted((r.path.rsplit("/", 1)[-1], r.query.get("page", "1"))
                  for r in sim.requests("GET", r"/export/\w+$"))


def test_full_load_equals_simulator_data(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=30, projects=4, requests_per_minute=None)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, page_size=3)
    assert_matches_sim(pipeline, sim)
    assert len(sim.live_reports()) > 10 and any(t.status == "processing" for t in sim.live_transcripts())
    assert [p for p in sim.live_projects() if not p.transcript_ids], "one project is empty"
    # every page of every list was read (30 transcripts / 3 = 10 pages), each detail once
    pages = list_pages(sim)
    assert pages.count(("transcripts", "10")) == 1 and ("projects", "2") in pages
    completed = [t for t in sim.live_transcripts() if t.status == "completed"]
    assert len(detail_paths(sim)) == len(completed) + len(sim.live_reports()) + len(sim.live_projects())
    # vendor fields the docs do not list are kept; Markdown content arrives whole
    assert any(r.get("language") for r in rows(pipeline, "transcripts"))
    assert all(r["content"].startswith("## ") for r in rows(pipeline, "reports"))


def test_second_run_makes_only_list_requests_first_page_of_each(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=30, projects=4, processing=3, requests_per_minute=None)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, page_size=5)
    sim.clear_log()
    info = load(pipeline, sim, page_size=5)
    assert list_pages(sim) == [("projects", "1"), ("reports", "1"), ("transcripts", "1")]
    assert detail_paths(sim) == []
    counts = pipeline.last_trace.last_normalize_info.row_counts
    assert not {t: n for t, n in counts.items() if not t.startswith("_dlt")}, counts
    assert info.loads_ids is not None
    assert_matches_sim(pipeline, sim)


def test_a_table_selected_alone_loads_alone_and_costs_only_its_own_calls(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=20, projects=4, requests_per_minute=None)
    pipeline = pipeline_for(tmp_path)
    run_strict(pipeline, meetlog(**sim.source_config(), page_size=4, http=FAST).with_resources("project_transcripts"))
    counts = pipeline.last_trace.last_normalize_info.row_counts
    assert {t for t in counts if not t.startswith("_dlt")} == {"project_transcripts"}
    assert {(r["project_id"], r["transcript_id"]) for r in rows(pipeline, "project_transcripts")} \
        == sim.memberships()
    # the projects list and one Get project each, nothing of the transcripts or reports
    assert detail_paths(sim) == sorted(f"projects/{p.id}" for p in sim.live_projects())
    assert {name for name, _ in list_pages(sim)} == {"projects"}
    # then reports alone: their list and details, no transcript call
    sim.clear_log()
    run_strict(pipeline, meetlog(**sim.source_config(), page_size=4, http=FAST).with_resources("reports"))
    assert {t for t in pipeline.last_trace.last_normalize_info.row_counts if not t.startswith("_dlt")} == {"reports"}
    assert detail_paths(sim) == sorted(f"reports/{r.id}" for r in sim.live_reports())
    assert {name for name, _ in list_pages(sim)} == {"reports"}
    # then everything: the memberships and reports already loaded are not fetched again
    sim.clear_log()
    load(pipeline, sim)
    completed = [t for t in sim.live_transcripts() if t.status == "completed"]
    assert detail_paths(sim) == sorted(f"transcripts/{t.id}" for t in completed)
    assert_matches_sim(pipeline, sim)


def test_transcript_completed_between_runs_arrives_with_its_text(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=20, processing=2, requests_per_minute=None)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    waiting = [t for t in sim.live_transcripts() if t.status == "processing"]
    assert by_id(pipeline, "transcripts")[waiting[0].id]["text"] is None
    sim.advance(hours=1)
    auto = sim.complete(waiting[0].id)
    sim.clear_log()
    load(pipeline, sim)
    row = by_id(pipeline, "transcripts")[waiting[0].id]
    assert row["status"] == "completed" and row["text"] == waiting[0].text and row["summary"]
    assert ids_of(row["report_ids"]) == [auto.id]
    assert by_id(pipeline, "reports")[auto.id]["content"] == auto.content
    # no history re-read: the first page of each list, and the two new records' details
    assert detail_paths(sim) == sorted([f"reports/{auto.id}", f"transcripts/{waiting[0].id}"])
    assert {page for _, page in list_pages(sim)} == {"1"}
    assert_matches_sim(pipeline, sim)


def test_report_added_to_an_old_transcript_arrives_with_its_content(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=24, requests_per_minute=None)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    oldest = [t for t in sim.live_transcripts() if t.status == "completed"][-1]
    sim.advance(days=90)
    added = sim.add_report(oldest.id)
    sim.clear_log()
    load(pipeline, sim)
    assert by_id(pipeline, "reports")[added.id]["content"] == added.content
    assert added.id in ids_of(by_id(pipeline, "transcripts")[oldest.id]["report_ids"])
    assert detail_paths(sim) == sorted([f"reports/{added.id}", f"transcripts/{oldest.id}"])
    assert {page for _, page in list_pages(sim)} == {"1"}
    assert_matches_sim(pipeline, sim)
    # a report still being generated is loaded from the list, and whole once it is done
    generating = sim.add_report(oldest.id, status="processing")
    load(pipeline, sim)
    assert by_id(pipeline, "reports")[generating.id]["content"] is None
    sim.complete_report(generating.id)
    load(pipeline, sim)
    assert by_id(pipeline, "reports")[generating.id]["content"] == generating.content
    assert_matches_sim(pipeline, sim)


def test_transcript_moved_between_projects_is_listed_under_the_new_project_only(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=24, projects=4, requests_per_minute=None)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    first, second, third, empty = sorted(sim.projects.values(), key=lambda p: p.created_at)
    assert not empty.transcript_ids and first.transcript_ids and second.transcript_ids
    moved = first.transcript_ids[0]
    sim.move(moved, second.id)
    for tid in list(third.transcript_ids):  # the third project empties into the fourth
        sim.move(tid, empty.id)
    sim.clear_log()
    load(pipeline, sim)
    members = {(r["project_id"], r["transcript_id"]) for r in rows(pipeline, "project_transcripts")}
    assert (second.id, moved) in members and (first.id, moved) not in members
    assert not [m for m in members if m[0] == third.id]
    assert members == sim.memberships()
    # details only of the projects whose updated_at moved
    assert detail_paths(sim) == sorted(f"projects/{p.id}" for p in (first, second, third, empty))
    sim.clear_log()
    load(pipeline, sim)
    assert detail_paths(sim) == []


def test_deleted_records_are_marked_and_a_sweep_catches_renames(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=24, projects=4, requests_per_minute=None)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    completed = [t for t in sim.live_transcripts() if t.status == "completed"]
    with_reports = [t for t in completed if sim.report_ids(t.id)]
    gone_transcript, keeps = with_reports[0], with_reports[1]
    gone_report = sim.report_ids(keeps.id)[0]
    gone_project = sorted(sim.projects.values(), key=lambda p: p.created_at)[-1]
    renamed = completed[-1]
    sim.delete_transcript(gone_transcript.id)
    sim.delete_report(gone_report)
    sim.delete_project(gone_project.id)
    sim.rename(renamed.id, "Переименовано ✓")
    load(pipeline, sim, sweep_interval_hours=0)
    transcripts, reports = by_id(pipeline, "transcripts"), by_id(pipeline, "reports")
    assert transcripts[gone_transcript.id]["deleted_at"] is not None
    assert all(reports[r.id]["deleted_at"] is not None for r in sim.reports.values()
               if r.transcription_id == gone_transcript.id)
    assert reports[gone_report]["deleted_at"] is not None
    assert gone_report not in ids_of(transcripts[keeps.id]["report_ids"])
    assert by_id(pipeline, "projects")[gone_project.id]["deleted_at"] is not None
    assert transcripts[renamed.id]["title"] == "Переименовано ✓" and transcripts[renamed.id]["text"] == renamed.text
    assert_matches_sim(pipeline, sim)
    # a sweep that lists nothing (another account) marks nothing
    other = start_sim(MeetlogSimulator, transcripts=0, projects=0, requests_per_minute=None)
    other.tokens[sim.token] = other.tokens.pop(other.token)
    run_strict(pipeline, meetlog(api_token=sim.token, base_url=other.base_url, sweep_interval_hours=0,
                                 page_size=4, http=FAST))
    marked = [r for r in rows(pipeline, "transcripts") if r["deleted_at"] is not None]
    assert [r["id"] for r in marked] == [gone_transcript.id]


def test_start_date_limits_the_first_load(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=30, requests_per_minute=None)
    pipeline = pipeline_for(tmp_path)
    cutoff = sim.live_transcripts()[9].created_at
    load(pipeline, sim, start_date=cutoff.isoformat())
    loaded = set(by_id(pipeline, "transcripts"))
    assert loaded == {t.id for t in sim.live_transcripts()[:10]}
    assert max(int(page) for name, page in list_pages(sim) if name == "transcripts") <= 3


def test_malformed_records_are_named_and_the_rest_loads(tmp_path, start_sim, caplog):
    sim = start_sim(MeetlogSimulator, transcripts=12, requests_per_minute=None)
    broken = sim.live_transcripts()[5]
    shape = sim.transcript_item

    def item(t):
        body = shape(t)
        if t.id == broken.id:
            body["created_at"] = "not a date"
        return body

    sim.transcript_item = item
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    assert broken.id in by_id(pipeline, "transcripts")
    assert any(broken.id in m and "created_at" in m for m in caplog.messages)
    named = [b for b in get_report("meetlog").bad_records if b.record_id == broken.id]
    assert [(b.table, b.problem, b.loaded) for b in named] == [
        ("transcripts", "created_at='not a date' unreadable", True)]


@pytest.mark.parametrize("value", ["https://meetlog.example", "https://meetlog.example/api/v1/export/"])
def test_base_url_may_be_host_or_api_root(value):
    from sources.meetlog.helpers import api_root

    assert api_root(value) == "https://meetlog.example/api/v1/export"
