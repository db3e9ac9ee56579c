"""Deletions marked inside the source's own run, in a plain `pipeline.run` (no CLI), on
DuckDB, a real Postgres and the filesystem destination: conversations (their transcripts,
keypoints and feedback stay), cancelled calendar events (their attendees stay) and deleted
webhooks (their events stay) keep every other column; nothing else changes."""

from __future__ import annotations

from simulators.convo import ConvoSimulator
from sources.convo import convo

from .destinations import children, without
from .test_convo import FAST

SIM = {"conversations": 14, "tier": "professional", "seed": 31, "segments": (10, 14),
       "keypoints_share": 1, "feedback_share": 1, "calendar_events": 9, "webhooks": 4}


def by_id(warehouse, pipeline, table: str, key: str = "id") -> dict:
    return {r[key]: r for r in warehouse.rows(pipeline, table)}


def segments(warehouse, pipeline) -> list[tuple]:
    return sorted((r["meeting_id"], r["segment_index"], r["speaker"], r["text"])
                  for r in warehouse.rows(pipeline, "transcript_segments"))


def test_deleted_records_are_marked_in_a_plain_pipeline_run(start_sim, warehouse):
    sim = start_sim(ConvoSimulator, **SIM)
    pipeline = warehouse.pipeline("convo_deletions")
    source = lambda: convo(**sim.source_config(), page_size=5, http=FAST)  # noqa: E731
    warehouse.run(pipeline, source())
    tables = {"conversations": "id", "calendar_events": "id", "webhooks": "id",
              "keypoints": "conversation_id", "feedback": "conversation_id"}
    before = {table: by_id(warehouse, pipeline, table, key) for table, key in tables.items()}
    kids = {"calendar_events": ("calendar_events__attendees", ("email", "response_status")),
            "webhooks": ("webhooks__events", ("value",)),
            "keypoints": ("keypoints__keypoints__sections", ("heading",))}
    child_rows = {parent: children(warehouse, pipeline, parent, child, key=tables[parent], columns=cols)
                  for parent, (child, cols) in kids.items()}
    transcript = segments(warehouse, pipeline)

    gone = {"conversations": [c.id for c in sim.visible()[3:5]],
            "calendar_events": [eid for eid, (start, _) in sim.event_times.items() if start > sim.now()][:2],
            "webhooks": list(sim.webhooks)[:2]}
    assert {table: len(ids) for table, ids in gone.items()} == {"conversations": 2, "calendar_events": 2,
                                                               "webhooks": 2}
    for cid in gone["conversations"]:
        sim.delete(cid)
    for eid in gone["calendar_events"]:
        del sim.events[eid]
    for hook in gone["webhooks"]:
        del sim.webhooks[hook]
    sim.advance(hours=25)  # the next sweep is due

    warehouse.run(pipeline, source())

    for table, ids in gone.items():
        after = by_id(warehouse, pipeline, table)
        assert {i for i, r in after.items() if r["deleted_at"] is not None} == set(ids), table
        for record_id in ids:  # every other column as it was (`_dlt_id` is dlt's own row id)
            assert without(after[record_id], "deleted_at", "_dlt_id") == \
                without(before[table][record_id], "deleted_at", "_dlt_id"), table
        for record_id in set(after) - set(ids):
            assert after[record_id] == before[table][record_id], table
    for table in ("keypoints", "feedback"):  # what hangs off a deleted conversation stays
        assert by_id(warehouse, pipeline, table, "conversation_id") == before[table], table
        assert set(gone["conversations"]) <= set(before[table])
    assert segments(warehouse, pipeline) == transcript
    assert {m for m, *_ in transcript} >= set(gone["conversations"])
    for parent, (child, cols) in kids.items():
        assert children(warehouse, pipeline, parent, child, key=tables[parent], columns=cols) == \
            child_rows[parent], child
    assert {p for p, *_ in child_rows["calendar_events"]} >= set(gone["calendar_events"])

    # marked once: the next run (a sweep again) loads nothing
    sim.advance(hours=25)
    warehouse.run(pipeline, source())
    counts = pipeline.last_trace.last_normalize_info.row_counts
    assert not {t for t in counts if not t.startswith("_dlt")}, counts
