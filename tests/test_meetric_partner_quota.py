"""The daily quota of unique conversations: counted, so a backfill meets no quota 429; and
when another client spent it, the first quota answer stops every further detail call."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import httpx

from simulators.meetric_partner import MeetricPartnerSimulator

from .partner_helpers import expected, loaded, partner_kwargs, quota_of, row_lists
from .utils import make_pipeline, rows, run

DETAIL = r"/conversations/[^/]+$"


def quota_answers(sim: MeetricPartnerSimulator) -> int:
    """429s to per-conversation calls (no faults, no per-minute limit: each is the quota's)."""
    return sum(r.status == 429 for r in sim.requests("GET", r"/conversations/"))


def details_fetched(sim: MeetricPartnerSimulator) -> Counter:
    return Counter(r.path for r in sim.requests("GET", DETAIL) if r.status == 200)


def completed(sim: MeetricPartnerSimulator) -> int:
    return sum(c.status == "completed" for c in sim.visible())


def assert_complete_and_once(sim: MeetricPartnerSimulator, pipeline) -> None:
    assert loaded(pipeline) == expected(sim)
    keys = row_lists(pipeline, "transcript_segments", "meeting_id, segment_index")
    assert len(keys) == len(set(keys))
    fetched = details_fetched(sim)
    assert len(fetched) == completed(sim) and max(fetched.values()) == 1  # no details fetched twice


def fast(sim: MeetricPartnerSimulator, concurrency: int = 8, **extra) -> dict:
    kwargs = partner_kwargs(sim, page_size=25, **extra)
    kwargs["http"]["concurrency"] = concurrency
    return kwargs


def test_a_1400_conversation_backfill_meets_no_quota_429_and_finishes_on_day_two(start_sim, tmp_path):
    sim = start_sim(MeetricPartnerSimulator, conversations=1400, seed=41, span_days=20, processing_share=0,
                    segments=(1, 3), requests_per_minute=None, daily_quota=1000)
    pipeline = make_pipeline(tmp_path, "backfill")
    day1 = run(pipeline, "meetric_partner", **fast(sim))
    assert day1.ok, day1.error
    assert quota_answers(sim) == 0  # counted: the quota's 429 is never provoked
    assert rows(pipeline, "summaries", "count(*) AS n") == [{"n": 1000}]
    assert f"{completed(sim) - 1000} conversations owe details" in day1.report.waiting["conversations"]
    assert any("1000 unique conversations a UTC day" in w for w in day1.report.warnings)
    assert rows(pipeline, "conversations", "count(*) AS n") == [{"n": 1400}]  # listing is free
    assert quota_of(pipeline)["day"] == sim.now().date().isoformat()
    assert len(quota_of(pipeline)["used"]) == 1000

    sim.advance(days=1)
    day2 = run(pipeline, "meetric_partner", **fast(sim))
    assert day2.ok, day2.error
    assert "conversations" not in day2.report.waiting
    assert quota_answers(sim) == 0
    assert_complete_and_once(sim, pipeline)


def test_without_counting_the_first_quota_answer_stops_every_queued_detail_call(start_sim, tmp_path):
    sim = start_sim(MeetricPartnerSimulator, conversations=200, seed=42, span_days=20, processing_share=0,
                    segments=(1, 2), requests_per_minute=None, daily_quota=100)
    pipeline = make_pipeline(tmp_path, "uncounted")
    concurrency = 8
    day1 = run(pipeline, "meetric_partner", **fast(sim, concurrency, daily_conversation_quota=0))
    assert day1.ok, day1.error
    # only calls already in flight when the first quota answer came may meet it too
    assert 1 <= quota_answers(sim) <= concurrency
    assert rows(pipeline, "summaries", "count(*) AS n") == [{"n": 100}]
    assert any("quota" in w for w in day1.report.warnings)
    assert "owe details" in day1.report.waiting["conversations"]
    # the rest of the day, no run sends a per-conversation call for a new conversation
    sim.clear_log()
    again = run(pipeline, "meetric_partner", **fast(sim, concurrency, daily_conversation_quota=0))
    assert again.ok, again.error
    assert sim.requests("GET", r"/conversations/") == []
    sim.advance(days=1)
    day2 = run(pipeline, "meetric_partner", **fast(sim, concurrency, daily_conversation_quota=0))
    assert day2.ok, day2.error
    assert "conversations" not in day2.report.waiting


def test_quota_spent_by_another_client_of_the_token_stops_at_its_first_answer(start_sim, tmp_path):
    sim = start_sim(MeetricPartnerSimulator, conversations=80, seed=43, span_days=20, processing_share=0,
                    segments=(1, 2), requests_per_minute=None, daily_quota=100)
    # another client of the same token read 60 conversations today, none of them in the window
    others = [sim.add_conversation(date=sim.now() - timedelta(days=45)).id for _ in range(60)]
    assert not set(others) & {c.id for c in sim.visible()}
    with httpx.Client(base_url=f"{sim.base_url}/api/v1/rest",
                      headers={"Authorization": f"Bearer {sim.token}"}) as other:
        for cid in others:
            assert other.get(f"conversations/{cid}/summary").status_code == 200
    pipeline = make_pipeline(tmp_path, "shared")
    concurrency = 4
    day1 = run(pipeline, "meetric_partner", **fast(sim, concurrency, daily_conversation_quota=100))
    assert day1.ok, day1.error
    assert 1 <= quota_answers(sim) <= concurrency
    assert rows(pipeline, "summaries", "count(*) AS n") == [{"n": 40}]  # what the other client left
    assert any("daily conversation quota spent" in w for w in day1.report.warnings)
    assert quota_of(pipeline)["spent"] is True
    sim.advance(days=1)
    day2 = run(pipeline, "meetric_partner", **fast(sim, concurrency, daily_conversation_quota=100))
    assert day2.ok, day2.error
    assert "conversations" not in day2.report.waiting
    assert_complete_and_once(sim, pipeline)


def test_the_quota_count_carries_over_to_the_next_run_of_the_same_day(start_sim, tmp_path):
    sim = start_sim(MeetricPartnerSimulator, conversations=70, seed=44, span_days=20, processing_share=0,
                    segments=(1, 2), requests_per_minute=None, daily_quota=40)
    pipeline = make_pipeline(tmp_path, "carry")
    first = run(pipeline, "meetric_partner", **fast(sim, 1, daily_conversation_quota=40,
                                                   http={**fast(sim)["http"], "concurrency": 1, "max_requests": 20}))
    assert first.ok, first.error
    used = len(quota_of(pipeline)["used"])
    assert 0 < used < 40 and len(details_fetched(sim)) == used
    second = run(pipeline, "meetric_partner", **fast(sim, daily_conversation_quota=40))
    assert second.ok, second.error
    assert quota_answers(sim) == 0  # the count went on from where the first run left it
    assert len(details_fetched(sim)) == 40
    sim.advance(days=1)
    third = run(pipeline, "meetric_partner", **fast(sim, daily_conversation_quota=40))
    assert third.ok, third.error
    assert "conversations" not in third.report.waiting
    assert quota_answers(sim) == 0
    assert_complete_and_once(sim, pipeline)
