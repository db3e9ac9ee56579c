"""Meemo deletions marked inside the source's own run, in a plain `pipeline.run` (no CLI), on
DuckDB, a real Postgres and the filesystem destination: the row keeps its other columns, the
meeting's participants, transcript and summary stay; nothing else changes. And a per-item
table selected alone loads alone, for its own calls only."""

from __future__ import annotations

from typing import Any

from simulators.meemo import MeemoSimulator
from sources.meemo import meemo

from .destinations import Warehouse, assert_marked, without
from .test_meemo import HTTP, PER_ITEM, loaded, pipeline

PER_MEETING = {"participants": ("participant_index",), "transcript_segments": ("segment_index",),
               "transcripts": (), "summaries": ()}


def meeting_rows(wh: Warehouse, p: Any) -> dict[str, list[tuple]]:
    """Every per-meeting table's rows as sorted tuples (dlt's own columns left out)."""
    out = {}
    for table, keys in PER_MEETING.items():
        found = [without(r, "_dlt_id", "_dlt_parent_id", "_dlt_list_idx") for r in wh.rows(p, table)]
        out[table] = sorted((str(r["meeting_id"]), *(r[k] for k in keys), tuple(sorted(map(str, r.items()))))
                            for r in found)
    return out


def test_deleted_meetings_and_webhooks_are_marked_in_a_plain_pipeline_run(start_sim, warehouse):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=6, processing_share=0.0, upcoming=0, legacy=0,
                    webhooks=2, events=(2, 3), seed=60)
    p = warehouse.pipeline("meemo_deletions")
    source = lambda: meemo(**sim.source_config(), page_size=4, sweep_interval_hours=0, http=HTTP)  # noqa: E731
    warehouse.run(p, source())
    before = {r["id"]: r for r in warehouse.rows(p, "meetings")}
    hooks_before = {r["id"]: r for r in warehouse.rows(p, "webhooks")}
    children = meeting_rows(warehouse, p)
    complete = {int(row[0]) for row in children["transcript_segments"]} & \
        {int(row[0]) for row in children["summaries"]} & {int(row[0]) for row in children["participants"]}
    gone = [next(m.id for m in sim.visible({org}) if m.id in complete) for org in (1, 2)]  # one per organization
    gone_hook = min(sim.webhooks)
    for mid in gone:
        sim.delete(mid)
    del sim.webhooks[gone_hook]

    warehouse.run(p, source())

    assert_marked(before, {r["id"]: r for r in warehouse.rows(p, "meetings")}, gone)
    assert meeting_rows(warehouse, p) == children  # participants, segments, transcripts, summaries intact
    assert_marked(hooks_before, {r["id"]: r for r in warehouse.rows(p, "webhooks")}, [gone_hook])

    # marked once: the next run loads nothing into either table
    warehouse.run(p, source())
    counts = p.last_trace.last_normalize_info.row_counts
    assert "meetings" not in counts and "webhooks" not in counts, counts


def test_a_per_item_table_selected_alone_loads_alone_and_costs_only_its_own_calls(tmp_path, start_sim):
    sim = start_sim(MeemoSimulator, organizations=2, meetings=5, seed=61)
    p = pipeline(tmp_path)
    config = {**sim.source_config(), "page_size": 4, "http": HTTP}
    p.run(meemo(**config).with_resources("participants"))
    people = sum(len(m.participants) for m in sim.visible())
    assert loaded(p) == {"participants": people}
    asked = {r.path for r in sim.requests("GET", PER_ITEM)}
    assert asked == {f"/api/v1/external/meeting/{m.id}/participants/" for m in sim.visible()}
    sim.clear_log()
    p.run(meemo(**config))  # everything now: the participants are not asked for again
    assert "participants" not in loaded(p)
    assert not [r for r in sim.requests("GET", PER_ITEM) if r.path.endswith("/participants/")]
    assert loaded(p)["meetings"] == len(sim.visible()) and loaded(p)["transcripts"]
    sim.clear_log()
    p.run(meemo(**config))  # nothing new: list requests only
    assert sim.requests("GET", PER_ITEM) == [] and loaded(p) == {}


def test_a_meeting_that_comes_back_is_live_again(start_sim, warehouse):
    sim = start_sim(MeemoSimulator, organizations=1, meetings=4, processing_share=0.0, upcoming=0, legacy=0,
                    webhooks=0, seed=62)
    p = warehouse.pipeline("meemo_revived")
    source = lambda: meemo(**sim.source_config(), page_size=4, sweep_interval_hours=0, http=HTTP)  # noqa: E731
    warehouse.run(p, source())
    back = sim.visible()[1]
    sim.delete(back.id)
    warehouse.run(p, source())
    assert {r["id"]: r["deleted_at"] for r in warehouse.rows(p, "meetings")}[back.id] is not None
    sim.meetings[back.id].deleted = False
    warehouse.run(p, source())
    assert {r["id"]: r["deleted_at"] for r in warehouse.rows(p, "meetings")}[back.id] is None
    assert [r for r in warehouse.rows(p, "meetings") if r["deleted_at"] is not None] == []
