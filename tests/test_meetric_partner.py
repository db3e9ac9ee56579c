"""The Meetric partner source, end to end against its simulator."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from simulators.meetric_partner import ALL_SCOPES, MeetricPartnerSimulator
from sources._common.errors import ConfigError
from sources._common.report import get_report
from sources.meetric_partner import check, meetric_partner

from .partner_helpers import expected, loaded, partner_kwargs, row_lists
from .utils import make_pipeline, rows, run, run_strict

LIMITS_OFF = {"requests_per_minute": None, "daily_quota": None}


@pytest.fixture
def sim(start_sim) -> MeetricPartnerSimulator:
    return start_sim(MeetricPartnerSimulator, conversations=80, seed=7, **LIMITS_OFF)


def per_conversation_calls(sim: MeetricPartnerSimulator) -> list:
    return sim.requests("GET", r"/conversations/[^/]+")


def test_full_load_equals_the_simulators_data(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    want, got = expected(sim), loaded(pipeline)
    for table in want:
        assert got[table] == want[table], table
    assert len(want["transcript_segments"]) > 300 and want["insights"]
    # both transcript shapes are present
    assert {c.medium for c in sim.visible() if c.status == "completed"} >= {"chat", "call"}
    # conversations older than the 30-day window are not listed and not loaded
    assert len(want["conversations"]) < len(sim.conversations)
    # one per-conversation call per completed conversation: transcript and insights included
    assert len(per_conversation_calls(sim)) == len(want["summaries"])
    # unknown vendor fields are kept
    assert any(r["crm_deal_id"] for r in rows(pipeline, "conversations", "crm_deal_id"))
    assert {r["account_id"] if "account_id" in r else r["id"] for r in rows(pipeline, "account")} == {sim.account["id"]}
    assert len(rows(pipeline, "webhook_deliveries")) >= 1


def test_second_run_makes_only_list_requests_and_loads_nothing(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    sim.clear_log()
    info = run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    assert per_conversation_calls(sim) == []
    paths = Counter(r.path.rsplit("/rest/", 1)[1] for r in sim.log)
    assert set(paths) <= {"account", "users", "teams", "departments", "conversations", "webhooks/deliveries"}
    assert pipeline.last_trace.last_normalize_info.row_counts == {}
    assert info.loads_ids == [] or all(not p.jobs["completed_jobs"] or
                                       all(j.job_file_info.table_name.startswith("_dlt")
                                           for j in p.jobs["completed_jobs"]) for p in info.load_packages)


def test_between_sweeps_only_the_recent_end_of_the_window_is_listed(start_sim, tmp_path):
    sim = start_sim(MeetricPartnerSimulator, conversations=80, seed=3, processing_share=0, **LIMITS_OFF)
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    full_listing = len(sim.requests("GET", r"/conversations$"))
    sim.clear_log()
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    assert len(sim.requests("GET", r"/conversations$")) == 1 < full_listing


def test_conversation_completed_between_runs_arrives_complete(sim, tmp_path):
    late = sim.add_conversation(status="processing", medium="video")
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    assert rows(pipeline, "conversations", "status", where=f"id = '{late.id}'") == [{"status": "processing"}]
    assert rows(pipeline, "transcript_segments", "count(*) AS n", where=f"meeting_id = '{late.id}'") == [{"n": 0}]
    assert "conversations" in get_report("meetric_partner").waiting

    sim.advance(hours=2)
    sim.complete(late.id)
    sim.clear_log()
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    assert [r.path.rsplit("/", 1)[1] for r in per_conversation_calls(sim)] == [late.id]
    got, want = loaded(pipeline), expected(sim)
    assert got == want
    assert rows(pipeline, "summaries", "summary", where=f"conversation_id = '{late.id}'")[0]["summary"]


def test_daily_quota_spreads_1500_conversations_over_two_days(start_sim, tmp_path):
    sim = start_sim(MeetricPartnerSimulator, conversations=1500, seed=11, span_days=20,
                    processing_share=0, segments=(1, 3), requests_per_minute=None, daily_quota=1000)
    pipeline = make_pipeline(tmp_path, "mp")
    kwargs = partner_kwargs(sim, page_size=25)
    kwargs["http"]["concurrency"] = 8

    first = run(pipeline, "meetric_partner", **kwargs)
    assert first.ok, first.error
    assert rows(pipeline, "summaries", "count(*) AS n") == [{"n": 1000}]
    assert "1000" in " ".join(first.report.warnings) or "quota" in " ".join(first.report.warnings)
    completed = sum(c.status == "completed" for c in sim.conversations.values())
    assert f"{completed - 1000} conversations owe details" in first.report.waiting["conversations"]
    assert rows(pipeline, "conversations", "count(*) AS n") == [{"n": 1500}]  # listing is free

    sim.advance(days=1)
    second = run(pipeline, "meetric_partner", **kwargs)
    assert second.ok, second.error
    assert "conversations" not in second.report.waiting
    assert loaded(pipeline) == expected(sim)
    # nothing twice: every key once, and no conversation's details fetched twice
    segment_keys = row_lists(pipeline, "transcript_segments", "meeting_id, segment_index")
    assert len(segment_keys) == len(set(segment_keys))
    fetched = Counter(r.path for r in per_conversation_calls(sim) if r.status == 200)
    assert len(fetched) == completed and max(fetched.values()) == 1


def test_token_without_transcripts_scope_loads_every_other_table(sim, tmp_path):
    token = sim.add_token(scopes=ALL_SCOPES - {"transcripts"})
    pipeline = make_pipeline(tmp_path, "mp")
    result = run(pipeline, "meetric_partner", **partner_kwargs(sim, api_token=token))
    assert result.ok, result.error
    assert "transcripts" in result.report.skipped["transcript_segments"]
    assert list(result.report.skipped) == ["transcript_segments"]
    got, want = loaded(pipeline), expected(sim)
    for table in want:
        if table != "transcript_segments":
            assert got[table] == want[table], table
    assert "transcript_segments" not in pipeline.default_schema.tables or got["transcript_segments"] == set()


def test_missing_list_scopes_skip_only_their_tables(sim, tmp_path):
    token = sim.add_token(scopes={"conversations", "transcripts", "insights"})
    pipeline = make_pipeline(tmp_path, "mp")
    result = run(pipeline, "meetric_partner", **partner_kwargs(sim, api_token=token))
    assert result.ok
    assert set(result.report.skipped) == {"users", "teams", "departments"}
    assert loaded(pipeline, ["conversations"])["conversations"] == expected(sim)["conversations"]


def test_renamed_conversation_is_updated(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    target = sim.visible()[5]
    sim.rename(target.id, "Renamed — Переименовано")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim, sweep_interval_hours=0)))
    assert rows(pipeline, "conversations", "title", where=f"id = '{target.id}'") == [
        {"title": "Renamed — Переименовано"}]
    assert loaded(pipeline) == expected(sim)


def test_deleted_conversation_is_marked_on_the_sweep_not_dropped(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    gone = sim.visible()[10]
    sim.delete(gone.id)
    # between sweeps nothing is marked...
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    assert rows(pipeline, "conversations", "deleted_at", where=f"id = '{gone.id}'")[0]["deleted_at"] is None
    # ...the sweep marks it, and keeps the row
    sim.advance(hours=25)
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    marked = rows(pipeline, "conversations", "id, deleted_at", where="deleted_at IS NOT NULL")
    assert [r["id"] for r in marked] == [gone.id]
    assert rows(pipeline, "transcript_segments", "count(*) AS n", where=f"meeting_id = '{gone.id}'")[0]["n"] >= 0


def test_a_sweep_that_lists_nothing_marks_nothing(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    for conv in list(sim.conversations.values()):
        conv.deleted = True
    result = run(pipeline, "meetric_partner", **partner_kwargs(sim, sweep_interval_hours=0))
    assert result.ok
    assert any("refusing to mark" in w for w in result.report.warnings)
    assert rows(pipeline, "conversations", "count(*) AS n", where="deleted_at IS NOT NULL") == [{"n": 0}]


def test_refetched_transcript_replaces_the_old_one_whole(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    conv = next(c for c in sim.visible() if c.status == "completed" and "sentences" in c.transcript
                and len(c.transcript["sentences"]) > 3)
    conv.transcript["sentences"] = conv.transcript["sentences"][:2]  # the vendor re-transcribed it
    sim.rename(conv.id, conv.title)  # moves updated_at
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim, sweep_interval_hours=0)))
    assert rows(pipeline, "transcript_segments", "segment_index", where=f"meeting_id = '{conv.id}'",
                order_by="segment_index") == [{"segment_index": 0}, {"segment_index": 1}]


def test_previous_run_older_than_the_window_warns_about_the_gap(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    sim.advance(days=35)
    sim.add_conversation()
    result = run(pipeline, "meetric_partner", **partner_kwargs(sim))
    assert result.ok
    assert any("never loaded" in w for w in result.report.warnings)


def test_recording_urls_load_only_when_asked(sim, tmp_path):
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim)))
    assert "recording_urls" not in pipeline.default_schema.tables
    assert sim.requests("GET", "recording-url") == []
    other = make_pipeline(tmp_path, "mp_rec")
    run_strict(other, meetric_partner(**partner_kwargs(sim, include_recordings=True)))
    with_recording = {c.id for c in sim.visible() if c.status == "completed" and c.has_recording}
    assert {r["conversation_id"] for r in rows(other, "recording_urls")} == with_recording


def test_pacing_keeps_under_the_per_minute_limit(start_sim, tmp_path):
    # the simulator enforces 600 a minute; paced to it, no request is refused...
    sim = start_sim(MeetricPartnerSimulator, conversations=30, seed=5, requests_per_minute=600, daily_quota=None)
    pipeline = make_pipeline(tmp_path, "paced")
    kwargs = partner_kwargs(sim)
    kwargs["http"]["requests_per_minute"] = 600
    run_strict(pipeline, meetric_partner(**kwargs))
    assert sim.status_counts()[429] == 0 and len(sim.log) > 20
    # ...while the same load unpaced against a tighter limit is refused, and stops cleanly
    # (a Retry-After beyond retry_after_max_seconds is left for the next run)
    tight = start_sim(MeetricPartnerSimulator, conversations=30, seed=5, requests_per_minute=10, daily_quota=None)
    kwargs = partner_kwargs(tight)
    kwargs["http"].update(retry_after_max_seconds=1)
    result = run(make_pipeline(tmp_path, "unpaced"), "meetric_partner", **kwargs)
    assert tight.status_counts()[429] > 0
    assert not result.ok or any("rate limited" in w.lower() or "rate limit" in w.lower()
                                for w in result.report.warnings)


def test_check_lists_what_the_scopes_allow_without_spending_quota(sim):
    token = sim.add_token(scopes={"conversations", "insights"}, include_recordings=False)
    access = check(sim.base_url, token)
    assert access["conversations"] is None and access["insights"] is None
    assert "transcripts" in access["transcript_segments"]
    assert "users" in access["users"]
    assert access["recording_urls"] is not None
    assert sim._touched == {} or all(not v for v in sim._touched.values())


def test_bad_config_names_the_key(sim):
    with pytest.raises(ConfigError, match="page_size"):
        meetric_partner(**partner_kwargs(sim, page_size=30))
    with pytest.raises(ConfigError, match="start_date"):
        meetric_partner(**partner_kwargs(sim, start_date="last tuesday"))
    with pytest.raises(ConfigError, match="SOURCES__METRIC_PARTNER__BASE_URL|SOURCES__MEETRIC_PARTNER__BASE_URL"):
        meetric_partner(**partner_kwargs(sim, base_url=""))


def test_start_date_limits_the_first_load(sim, tmp_path):
    cutoff = sim.now() - timedelta(days=10)
    pipeline = make_pipeline(tmp_path, "mp")
    run_strict(pipeline, meetric_partner(**partner_kwargs(sim, start_date=cutoff.isoformat())))
    want = {c.id for c in sim.visible() if c.date >= cutoff}
    assert {r["id"] for r in rows(pipeline, "conversations", "id")} == want
