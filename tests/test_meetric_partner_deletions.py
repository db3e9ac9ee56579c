"""Deletions marked inside the source's own run, in a plain `pipeline.run` (no CLI), on
DuckDB, a real Postgres and the filesystem destination: the row keeps its other columns and
its child rows; nothing else changes."""

from __future__ import annotations

from simulators.meetric_partner import MeetricPartnerSimulator
from sources.meetric_partner import meetric_partner

from .destinations import assert_marked, children
from .partner_helpers import partner_kwargs

LIMITS_OFF = {"requests_per_minute": None, "daily_quota": None}


def test_deleted_conversations_are_marked_in_a_plain_pipeline_run(start_sim, warehouse):
    sim = start_sim(MeetricPartnerSimulator, conversations=30, seed=5, processing_share=0, **LIMITS_OFF)
    pipeline = warehouse.pipeline("partner_deletions")
    source = lambda: meetric_partner(**partner_kwargs(sim, sweep_interval_hours=0))  # noqa: E731
    warehouse.run(pipeline, source())
    before = {r["id"]: r for r in warehouse.rows(pipeline, "conversations")}
    participants = children(warehouse, pipeline, "conversations", "conversations__participants",
                            columns=("name", "email"))
    summaries = {r["conversation_id"]: r["summary"] for r in warehouse.rows(pipeline, "summaries")}
    with_people = {p[0] for p in participants}
    gone = [c.id for c in sim.visible() if c.id in with_people][:2]
    assert len(gone) == 2
    for cid in gone:
        sim.delete(cid)

    warehouse.run(pipeline, source())

    assert_marked(before, {r["id"]: r for r in warehouse.rows(pipeline, "conversations")}, gone)
    assert children(warehouse, pipeline, "conversations", "conversations__participants",
                    columns=("name", "email")) == participants
    assert {r["conversation_id"]: r["summary"] for r in warehouse.rows(pipeline, "summaries")} == summaries

    # marked once: the next run loads nothing into conversations
    info = warehouse.run(pipeline, source())
    counts = pipeline.last_trace.last_normalize_info.row_counts
    assert "conversations" not in counts, (info, counts)
