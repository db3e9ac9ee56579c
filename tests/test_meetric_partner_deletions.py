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


def test_one_table_loaded_alone_then_a_full_run_fills_the_others(start_sim, tmp_path):
    """The detail call feeds four tables: a run that selects one of them settles only that
    one; the next run of the same selection calls nothing, a full run fetches the rest."""
    import dlt

    from .partner_helpers import expected, loaded

    sim = start_sim(MeetricPartnerSimulator, conversations=20, seed=8, processing_share=0, **LIMITS_OFF)
    pipeline = dlt.pipeline("partner_partial", destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
                            dataset_name="p", pipelines_dir=str(tmp_path / "p"))
    completed = [c for c in sim.visible() if c.status == "completed"]
    pipeline.run(meetric_partner(**partner_kwargs(sim)).with_resources("transcript_segments"))
    details = sim.requests("GET", r"/conversations/[^/]+$")
    assert len(details) == len(completed)
    assert all(r.query.get("include_insights") is None for r in details)  # only what is selected
    sim.clear_log()
    pipeline.run(meetric_partner(**partner_kwargs(sim)).with_resources("transcript_segments"))
    assert not sim.requests("GET", r"/conversations/[^/]+$")  # nothing new for this selection
    pipeline.run(meetric_partner(**partner_kwargs(sim)))
    assert len(sim.requests("GET", r"/conversations/[^/]+$")) == len(completed)
    want, got = expected(sim), loaded(pipeline)
    for table in ("summaries", "insights", "conversation_topics", "transcript_segments", "conversations"):
        assert got[table] == want[table], table
    sim.clear_log()
    pipeline.run(meetric_partner(**partner_kwargs(sim)))
    assert not sim.requests("GET", r"/conversations/[^/]+$")
