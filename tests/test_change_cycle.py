"""The change cycle, for every source on DuckDB, a real Postgres and the filesystem destination
(Delta), in a plain `dlt.pipeline(...).run(source)` (no CLI):

a. a full load holds what the simulator holds (main table and one child/detail table);
b. a rerun with nothing changed loads no data rows and makes no per-item/detail request;
c. one new, one changed and one deleted record at the simulator, then a sweep: the new row is
   there, the changed value loaded, the deleted row marked (`deleted_at`, other columns as
   they were), no primary key loaded twice;
d. a fresh worker (the pipeline's local folder deleted) restores its state from the
   destination: nothing new means no detail request and no data row, and one more new record
   loads on the next run.

With `MEETING_ELT_COUNTS_DIR` set, each case writes its tables' row counts there as JSON
(`python -m bench.destination_counts` prints them side by side).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulators.convo import ConvoSimulator
from simulators.meemo import MeemoSimulator
from simulators.meetlog import MeetlogSimulator
from simulators.meetric import MeetricSimulator
from simulators.meetric_partner import MeetricPartnerSimulator
from sources.convo import convo
from sources.meemo import meemo
from sources.meetlog import meetlog
from sources.meetric import meetric
from sources.meetric_partner import meetric_partner

from .destinations import Warehouse, without

COUNTS_ENV = "MEETING_ELT_COUNTS_DIR"
HTTP = {"requests_per_minute": 0, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


@dataclass(frozen=True)
class Scenario:
    """How one source goes through the cycle against its simulator."""

    sim: Callable[[Any], Any]                     # start_sim -> a started simulator
    source: Callable[[Any], Any]                  # sim -> a dlt source, sweeping every run
    main: str                                     # the main table (key `id`, has `deleted_at`)
    child: str                                    # a child/detail table of the main records
    counts: Callable[[Any], dict[str, int]]       # sim -> {main: live records, child: their rows}
    child_rows: Callable[[Any, Any], int]         # (sim, main id) -> that record's child rows
    add: Callable[[Any], Any]                     # sim -> the id of a new record
    change: Callable[[Any, Any], tuple[Any, str, Any]]  # (sim, n) -> (id, column, new value)
    delete: Callable[[Any], Any]                  # sim -> the id of a record it deleted
    detail: str                                   # regex: a per-item/detail request's path
    new_costs_detail: bool = True                 # a new record is fetched by id (not: the lists are whole)
    settles_next_run: frozenset[str] = frozenset()  # tables a change may reach one run later (documented)
    # a documented difference between destinations: (warehouse, pipeline, sim, deleted id,
    # its rows read before the change run) -> asserts it; `capture` reads those rows
    capture: Callable[[Warehouse, Any, str], Any] | None = None
    documented: Callable[[Warehouse, Any, Any, str, Any], None] | None = None


# ------------------------------------------------------------------ convo
def _convo_sim(start_sim):
    return start_sim(ConvoSimulator, conversations=12, tier="professional", seed=41, segments=(2, 5),
                     calendar_events=4, webhooks=2)


def _rename_visible(sim, n):
    """convo and meemo: the (2+n)th visible record gets a new title."""
    rid = sim.visible()[2 + n].id
    sim.rename(rid, f"Renamed {n} – cycle")
    return rid, "title", f"Renamed {n} – cycle"


def _delete_visible(sim):
    """convo and meemo: the 7th visible record is deleted."""
    rid = sim.visible()[6].id
    sim.delete(rid)
    return rid


CONVO = Scenario(
    sim=_convo_sim,
    source=lambda sim: convo(**sim.source_config(), page_size=5, sweep_interval_hours=0, http=HTTP),
    main="conversations", child="transcript_segments",
    counts=lambda sim: {"conversations": len(sim.visible()),
                        "transcript_segments": sum(len(c.segments) for c in sim.visible())},
    child_rows=lambda sim, cid: len(sim.conversations[cid].segments),
    add=lambda sim: sim.add_conversation().id,
    change=_rename_visible, delete=_delete_visible,
    detail=r"/conversations/[^/]+/")


# ------------------------------------------------------------------ meemo
MEEMO = Scenario(
    sim=lambda start_sim: start_sim(MeemoSimulator, organizations=2, meetings=6, processing_share=0.0,
                                    upcoming=0, legacy=0, webhooks=1, events=(1, 2), segments=(2, 5), seed=43),
    source=lambda sim: meemo(**sim.source_config(), page_size=4, sweep_interval_hours=0, http=HTTP),
    main="meetings", child="participants",
    counts=lambda sim: {"meetings": len(sim.visible()),
                        "participants": sum(len(m.participants) for m in sim.visible())},
    child_rows=lambda sim, mid: len(sim.meetings[int(mid)].participants),
    add=lambda sim: sim.add_meeting(min(m.org_id for m in sim.visible()), state="completed").id,
    change=_rename_visible, delete=_delete_visible,
    # a sweep re-reads every webhook's detail (`webhooks/{id}/`, documented in its README): every run
    # here sweeps, so only the per-meeting calls say whether a run stayed incremental
    detail=r"/(meeting|webhook-events)/\d+/")


# ------------------------------------------------------------------ meetlog
def _meetlog_rename(sim, n):
    tid = sim.live_transcripts()[2 + n].id
    sim.rename(tid, f"Renamed {n} – cycle")
    return tid, "title", f"Renamed {n} – cycle"


def _meetlog_delete(sim):
    in_project = {tid for _, tid in sim.memberships()}
    tid = next(t.id for t in sim.live_transcripts()[6:] if t.status == "completed" and sim.report_ids(t.id)
               and t.id in in_project)
    sim.delete_transcript(tid)
    return tid


def _memberships(wh: Warehouse, pipeline, transcript_id: str | None = None) -> set[tuple[str, str]]:
    return {(r["project_id"], r["transcript_id"]) for r in wh.rows(pipeline, "project_transcripts")
            if transcript_id is None or r["transcript_id"] == transcript_id}


def _meetlog_memberships(wh: Warehouse, pipeline, sim, deleted_id: str, before: set) -> None:
    """A deleted transcript leaves its projects: SQL destinations replace a project's
    membership whole (merge key `project_id`); the filesystem destination's Delta upsert
    takes no merge key, so there its old rows stay (documented in sources/meetlog/README.md)."""
    assert before  # it was in a project, so the difference can show
    # regression: a project empty from the start sent its hard-delete marker row on the first
    # load, which the first write of a Delta table stored as a row ('' transcript)
    assert any(not p.transcript_ids for p in sim.live_projects())
    assert all(r["transcript_id"] and not r.get("_removed") for r in wh.rows(pipeline, "project_transcripts"))
    kept = before if wh.kind == "filesystem" else set()
    assert _memberships(wh, pipeline) == sim.memberships() | kept
    assert not {m for m in sim.memberships() if m[1] == deleted_id}


MEETLOG = Scenario(
    sim=lambda start_sim: start_sim(MeetlogSimulator, transcripts=16, projects=3, seed=45,
                                    requests_per_minute=None),
    source=lambda sim: meetlog(**sim.source_config(), page_size=5, sweep_interval_hours=0, http=HTTP),
    main="transcripts", child="reports",
    counts=lambda sim: {"transcripts": len(sim.live_transcripts()), "reports": len(sim.live_reports())},
    child_rows=lambda sim, tid: len(sim.report_ids(tid)),
    add=lambda sim: sim.add_transcript(status="completed").id,
    change=_meetlog_rename, delete=_meetlog_delete,
    detail=r"/(transcripts|reports|projects)/[^/]+$",
    capture=_memberships, documented=_meetlog_memberships)


# ------------------------------------------------------------------ meetric (workspace)
def _meetric_conversations(sim) -> list[dict]:
    rows = [c for acc in sim.account_ids for c in sim.public(acc, "conversations")]
    return sorted(rows, key=lambda c: c["id"])


def _meetric_rename(sim, n):
    cid = _meetric_conversations(sim)[2 + n]["id"]
    sim.rename_conversation(cid, f"Renamed {n} – cycle")
    return cid, "title", f"Renamed {n} – cycle"


def _meetric_delete(sim):
    cid = next(c["id"] for c in _meetric_conversations(sim)[6:] if c["status"] == "processed"
               and _meetric_insights(sim, c["id"]))
    sim.delete_conversation(cid)
    return cid


def _meetric_insights(sim, cid=None) -> int:
    return sum(1 for acc in sim.account_ids for i in sim.public(acc, "insights")
               if cid is None or i["conversation_id"] == cid)


MEETRIC = Scenario(
    sim=lambda start_sim: start_sim(MeetricSimulator, accounts=2, conversations=8, users=4, span_days=10,
                                    rate_limit=None, seed=47),
    source=lambda sim: meetric(**sim.source_config(), page_size=5, sweep_interval_hours=0, http=HTTP),
    main="conversations", child="insights",
    counts=lambda sim: {"conversations": len(_meetric_conversations(sim)), "insights": _meetric_insights(sim)},
    child_rows=_meetric_insights,
    add=lambda sim: sim.add_conversation(sim.account_ids[0])["id"],
    change=_meetric_rename, delete=_meetric_delete,
    # a sweep asks every team's and department's managers (documented in its README): every run
    # here sweeps, so only the per-record calls say whether a run stayed incremental
    # the lists carry whole records: a new one costs no per-record call (README: "the only
    # per-item calls are the managers lists"), so the regex only proves that none is made
    detail=r"/(conversations|action-items)/[^/]+$|/insights/(?!trends$|summary$)[^/]+$", new_costs_detail=False,
    # an older day's summary that a change moved is asked again "the same run, or the next"
    # (listing.SummaryDays): the summary is read before the deletion that moved it is seen
    settles_next_run=frozenset({"insight_summary"}))


# ------------------------------------------------------------------ meetric partner
def _partner_rename(sim, n):
    cid = sim.visible()[2 + n].id
    sim.rename(cid, f"Renamed {n} – cycle")
    return cid, "title", f"Renamed {n} – cycle"


def _partner_delete(sim):
    cid = next(c.id for c in sim.visible()[6:] if c.status == "completed")
    sim.delete(cid)
    return cid


PARTNER = Scenario(
    sim=lambda start_sim: start_sim(MeetricPartnerSimulator, conversations=14, seed=49, processing_share=0,
                                    requests_per_minute=None, daily_quota=None),
    source=lambda sim: meetric_partner(**sim.source_config(), page_size=5, sweep_interval_hours=0,
                                       http=dict(HTTP, concurrency=4)),
    main="conversations", child="summaries",
    counts=lambda sim: {"conversations": len(sim.visible()),
                        "summaries": sum(1 for c in sim.visible() if c.status == "completed")},
    child_rows=lambda sim, cid: int(sim.conversations[cid].status == "completed"),
    add=lambda sim: sim.add_conversation(status="completed").id,
    change=_partner_rename, delete=_partner_delete,
    detail=r"/conversations/[^/]+(/.*)?$")


SCENARIOS = {"convo": CONVO, "meemo": MEEMO, "meetlog": MEETLOG, "meetric": MEETRIC,
             "meetric_partner": PARTNER}


# ------------------------------------------------------------------ reading the tables
def loaded_rows(pipeline) -> dict[str, int]:
    """Data rows the last run loaded, per table (dlt's own tables left out)."""
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return {t: n for t, n in counts.items() if not t.startswith("_dlt")}


def has_deleted_at(pipeline, table: str) -> bool:
    return "deleted_at" in pipeline.default_schema.get_table_columns(table)


def table_counts(wh: Warehouse, pipeline) -> dict[str, dict[str, int]]:
    """Per data table: all its rows, and the live ones (`deleted_at` null where it has one)."""
    out = {}
    for table in sorted(pipeline.default_schema.data_table_names(seen_data_only=True)):
        rows = wh.rows(pipeline, table)
        live = [r for r in rows if r.get("deleted_at") is None] if has_deleted_at(pipeline, table) else rows
        out[table] = {"rows": len(rows), "live": len(live)}
    return out


def assert_keys_unique(wh: Warehouse, pipeline) -> None:
    """No table holds a primary key twice (nothing was loaded twice)."""
    schema = pipeline.default_schema
    checked = 0
    for table in schema.data_table_names(seen_data_only=True):
        key = [c for c, col in schema.get_table_columns(table).items() if col.get("primary_key")]
        if not key:
            continue
        keys = Counter(tuple(str(r[c]) for c in key) for r in wh.rows(pipeline, table))
        assert not [k for k, n in keys.items() if n > 1], (table, key)
        checked += 1
    assert checked >= 2  # the main table and at least one more


def by_id(wh: Warehouse, pipeline, table: str) -> dict[str, dict]:
    return {str(r["id"]): r for r in wh.rows(pipeline, table)}


def write_counts(name: str, kind: str, counts: dict) -> None:
    folder = os.environ.get(COUNTS_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}__{kind}.json").write_text(json.dumps(
            {"source": name, "destination": kind, "tables": counts}, indent=1, sort_keys=True))


# ------------------------------------------------------------------ the cycle
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_change_cycle_and_a_fresh_worker(name, start_sim, warehouse, tmp_path):
    sc = SCENARIOS[name]
    sim = sc.sim(start_sim)
    pipeline = warehouse.pipeline(f"cycle_{name}")

    # a. full load: what the simulator holds
    warehouse.run(pipeline, sc.source(sim))
    want = sc.counts(sim)
    assert want[sc.main] >= 8 and want[sc.child] >= 4, want  # enough to tell a count apart
    got = table_counts(warehouse, pipeline)
    assert {t: got[t]["live"] for t in want} == want
    assert got[sc.main]["rows"] == want[sc.main]

    # b. nothing changed: no data rows, list requests only
    sim.clear_log()
    warehouse.run(pipeline, sc.source(sim))
    assert loaded_rows(pipeline) == {}
    assert sim.log and not sim.requests(None, sc.detail), [r.path for r in sim.requests(None, sc.detail)]

    # c. one new, one changed, one deleted; the run sweeps
    before = by_id(warehouse, pipeline, sc.main)
    new_id = str(sc.add(sim))
    changed_id, column, value = sc.change(sim, 0)
    deleted_id = str(sc.delete(sim))
    deleted_children = sc.child_rows(sim, deleted_id) if not has_deleted_at(pipeline, sc.child) else 0
    assert new_id not in before and {str(changed_id), deleted_id} <= set(before)
    assert before[str(changed_id)][column] != value
    captured = sc.capture(warehouse, pipeline, deleted_id) if sc.capture else None
    sim.clear_log()
    warehouse.run(pipeline, sc.source(sim))
    # the new record cost its detail calls (the regex is live)
    assert bool(sim.requests(None, sc.detail)) == sc.new_costs_detail
    after = by_id(warehouse, pipeline, sc.main)
    assert new_id in after and after[new_id]["deleted_at"] is None
    assert after[str(changed_id)][column] == value and after[str(changed_id)]["deleted_at"] is None
    assert after[deleted_id]["deleted_at"] is not None
    assert without(after[deleted_id], "deleted_at", "_dlt_id") == without(before[deleted_id], "deleted_at", "_dlt_id")
    assert {i for i, r in after.items() if r["deleted_at"] is not None} == {deleted_id}
    assert set(after) == set(before) | {new_id}
    assert_keys_unique(warehouse, pipeline)
    want = sc.counts(sim)
    got = table_counts(warehouse, pipeline)
    assert got[sc.main]["live"] == want[sc.main]
    # a marked child table counts live rows; otherwise a deleted record's child rows stay
    assert got[sc.child]["live"] == want[sc.child] + deleted_children
    assert sc.child_rows(sim, new_id) >= 1
    if sc.documented:
        sc.documented(warehouse, pipeline, sim, deleted_id, captured)

    # settled: the same worker's next run loads nothing (the marks were written once), but
    # what the source documents as catching up one run later
    sim.clear_log()
    warehouse.run(pipeline, sc.source(sim))
    assert set(loaded_rows(pipeline)) <= sc.settles_next_run, loaded_rows(pipeline)
    assert not sim.requests(None, sc.detail)
    settled = table_counts(warehouse, pipeline)

    # d. a fresh worker: no local pipeline folder; state comes back from the destination
    folder = Path(pipeline.pipelines_dir)
    assert folder.is_relative_to(tmp_path) and (folder / pipeline.pipeline_name).is_dir()
    shutil.rmtree(folder)
    fresh = warehouse.pipeline(f"cycle_{name}")
    assert fresh.pipeline_name == pipeline.pipeline_name and fresh.dataset_name == pipeline.dataset_name
    assert not fresh.state.get("sources")  # nothing local
    sim.clear_log()
    warehouse.run(fresh, sc.source(sim))
    assert fresh.state.get("sources", {}).get(name)  # restored
    assert loaded_rows(fresh) == {}, "a fresh worker reloaded data: its state was not restored"
    assert sim.log and not sim.requests(None, sc.detail), [r.path for r in sim.requests(None, sc.detail)]
    assert table_counts(warehouse, fresh) == settled

    # …and stays incremental: one more new record (and a change) load on its next run
    newer_id = str(sc.add(sim))
    changed_again, column, value = sc.change(sim, 1)
    sim.clear_log()
    warehouse.run(fresh, sc.source(sim))
    after = by_id(warehouse, fresh, sc.main)
    assert newer_id in after and after[str(changed_again)][column] == value
    assert set(after) == set(before) | {new_id, newer_id}
    assert loaded_rows(fresh)[sc.main] <= 3, loaded_rows(fresh)  # the new and changed rows, not all
    assert_keys_unique(warehouse, fresh)
    counts = table_counts(warehouse, fresh)
    assert counts[sc.main]["live"] == sc.counts(sim)[sc.main]

    # e. the counts, for the side-by-side table
    write_counts(name, warehouse.kind, counts)
