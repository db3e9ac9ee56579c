"""convo: the rolling-hour request budget, tiers, late keypoints, and AI credits."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from simulators.convo import ConvoSimulator
from sources._common.report import get_report
from sources.convo import settings
from sources.convo.quota import Credits
from tests.test_convo import assert_matches_sim, load, per_item_requests, pipeline_for
from tests.utils import rows


def run_until_done(pipeline, sim, max_runs: int, **kw) -> list[int]:
    """Runs hour after hour until a run is not cut short; returns each run's request count."""
    counts = []
    for _ in range(max_runs):
        before = len(sim.requests())
        load(pipeline, sim, **kw)
        counts.append(len(sim.requests()) - before)
        if "stopped early" not in get_report("convo").waiting.get("request budget", ""):
            return counts
        sim.advance(hours=1)
    raise AssertionError(f"not done after {max_runs} runs: {counts}")


def test_300_conversations_load_completely_over_hourly_runs_at_100_an_hour_without_a_429(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=300, tier="starter", segments=(2, 12), seed=11)
    pipeline = pipeline_for(tmp_path)
    counts = run_until_done(pipeline, sim, max_runs=16, page_size=100)
    assert sim.rate_limited == 0  # not one 429 provoked
    assert sim.status_counts()[429] == 0
    assert all(n <= 100 - settings.DEFAULT_RESERVE for n in counts), counts
    assert len(counts) >= 4  # it really took several runs
    assert_matches_sim(pipeline, sim)
    # nothing fetched twice: every transcript and every found keypoints/feedback exactly once
    fetched = Counter(r.path for r in sim.requests("GET") if r.status == 200 and "/conversations/" in r.path)
    assert fetched and max(fetched.values()) == 1
    print(f"\n300 conversations at 100 requests/hour: {len(counts)} runs, requests per run {counts}, "
          f"{sum(counts)} requests, 429s: {sim.rate_limited}")


def test_conversations_and_their_transcripts_come_first(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=150, tier="starter", segments=(2, 6), seed=12)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, page_size=100)
    assert len(rows(pipeline, "conversations")) == 150  # every row, from 2 list pages
    assert not sim.requests(pattern="/(keypoints|feedback)$")  # transcripts before insights
    fetched = [r.path.split("/")[-2] for r in sim.requests(pattern="/transcript$")]
    # newest first: up to the concurrency (4 workers) the last slots may go out of order
    newest_first = [c.id for c in sim.visible()][: len(fetched) + 4]
    assert len(fetched) > 80 and set(fetched) <= set(newest_first)
    assert "owe transcripts" in get_report("convo").waiting["transcripts"]
    # a new conversation arriving mid-backfill jumps the queue
    sim.advance(hours=1)
    new = sim.add_conversation(segments=4)
    sim.clear_log()
    load(pipeline, sim, page_size=100)
    fetched = [r.path.split("/")[-2] for r in sim.requests(pattern="/transcript$")]
    assert fetched.index(new.id) < fetched.index(sim.visible()[-1].id)  # before the oldest


def test_higher_tier_goes_faster(tmp_path, start_sim):
    runs = {}
    for tier in ("starter", "professional"):
        sim = start_sim(ConvoSimulator, conversations=60, tier=tier, segments=(2, 12), seed=13)
        pipeline = pipeline_for(tmp_path, f"convo_{tier}")
        runs[tier] = len(run_until_done(pipeline, sim, max_runs=8, page_size=100))
        assert sim.rate_limited == 0
        assert_matches_sim(pipeline, sim)
    assert runs["professional"] == 1 < runs["starter"]


def test_enterprise_without_rate_headers_counts_its_own_requests(tmp_path, start_sim, monkeypatch):
    monkeypatch.setitem(settings.HOURLY_LIMIT, "enterprise", 40)
    sim = start_sim(ConvoSimulator, conversations=30, tier="enterprise", rate_limit=40, seed=14)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    first = len(sim.requests())
    assert first == 40 - settings.DEFAULT_RESERVE
    sim.advance(minutes=10)
    load(pipeline, sim)  # same hour: only the first request, then a clean stop
    assert len(sim.requests()) - first <= 1
    sim.advance(hours=1)
    counts = run_until_done(pipeline, sim, max_runs=12)
    assert sim.rate_limited == 0
    assert_matches_sim(pipeline, sim)
    assert all(n <= 35 for n in counts)


def test_hour_spent_by_someone_else_stops_cleanly_and_loads_nothing(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=10, tier="starter")
    other = sim.add_key("starter")  # the same user's Zapier key spends the hour
    now = sim.now().timestamp()
    sim._calls[sim.keys[other].user_id].extend([now] * 100)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    report = get_report("convo")
    assert "stopped early" in report.waiting["request budget"]
    assert len(sim.requests()) == 1
    sim.advance(hours=1, seconds=1)
    load(pipeline, sim)
    assert_matches_sim(pipeline, sim)


# ------------------------------------------------------------------------------ keypoints, feedback


def test_keypoints_that_appear_later_are_loaded_later(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=20, tier="professional", keypoints_share=0,
                    feedback_share=0, segments=(12, 14), seed=15)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, ai_recheck_days=3)
    recent = [c for c in sim.visible() if sim.now() - c.start < timedelta(days=2)]
    old = [c for c in sim.visible() if sim.now() - c.start > timedelta(days=3)]
    sim.add_keypoints(recent[0].id)
    sim.add_feedback(recent[0].id)
    sim.add_keypoints(old[0].id)
    sim.clear_log()
    load(pipeline, sim, ai_recheck_days=3)  # too soon: not asked again yet
    assert per_item_requests(sim) == []
    sim.advance(hours=1, minutes=1)
    load(pipeline, sim, ai_recheck_days=3)
    assert {r["conversation_id"] for r in rows(pipeline, "keypoints")} == {recent[0].id}
    assert {r["conversation_id"] for r in rows(pipeline, "feedback")} == {recent[0].id}
    # an old conversation was checked once and is not asked again (bounded re-checks)
    assert not sim.requests(pattern=f"/{old[0].id}/")
    # back-off: the next hour asks nobody, and after ai_recheck_days nobody at all
    sim.clear_log()
    sim.advance(hours=1, minutes=1)
    load(pipeline, sim, ai_recheck_days=3)
    assert per_item_requests(sim) == []
    sim.advance(days=3)
    load(pipeline, sim, ai_recheck_days=3)  # the last look: now older than ai_recheck_days
    sim.clear_log()
    sim.advance(days=1)
    load(pipeline, sim, ai_recheck_days=3)
    assert per_item_requests(sim) == []
    assert sim.ai_used_now() == 0 and not sim.requests("POST")


def test_no_ai_credit_is_spent_unless_generation_is_turned_on(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=15, tier="professional", keypoints_share=0.2, seed=16)
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim)
    assert sim.requests("GET", "/keypoints$")  # it did look
    assert sim.requests("POST") == [] and sim.ai_used_now() == 0


def test_generation_stays_within_the_monthly_budget_and_never_pays_for_a_cached_result(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=12, tier="professional", keypoints_share=0.3,
                    feedback_share=0, segments=(10, 14), seed=17)
    pipeline = pipeline_for(tmp_path)
    had = {c.id for c in sim.visible() if c.keypoints}
    load(pipeline, sim, ai_generation_budget=5)
    posts = sim.requests("POST")
    assert len(posts) == 5 and sim.ai_used_now() == 5
    posted = {r.path.split("/")[-2] for r in posts}
    assert not posted & had  # a cached result is never POSTed for
    for r in posts:  # and every POST follows a GET that said 404
        kind = r.path.rsplit("/", 1)[1]
        assert [g.status for g in sim.requests("GET", f"{r.path.split('/')[-2]}/{kind}$")] == [404]
    generated = {r["conversation_id"] for r in rows(pipeline, "keypoints")} - had
    assert len(generated) == 5 - sum(1 for r in posts if r.path.endswith("feedback"))
    assert get_report("convo").waiting["ai credits"].startswith("5 of 5")
    # the budget is for the month: later runs spend nothing more
    sim.advance(hours=5)
    load(pipeline, sim, ai_generation_budget=5)
    assert sim.ai_used_now() == 5


def test_a_credit_is_given_back_only_for_a_post_that_made_nothing():
    state: dict = {}
    credits = Credits(state, budget=2, now=datetime(2026, 12, 1, tzinfo=UTC), plan_remaining=5)
    assert credits.take(("a", "keypoints")) and credits.take(("b", "feedback"))
    assert not credits.take(("c", "keypoints"))  # the month's budget is 2
    credits.keep(("a", "keypoints"))  # answered with a result: spent for good
    credits.give_back(("a", "keypoints"))
    credits.give_back(("b", "feedback"))  # refused (the hour's budget, a 400): not spent
    credits.give_back(("b", "feedback"))  # given back once only
    assert (credits.spent, credits.plan_remaining) == (1, 4)
    assert state["ai_generation"] == {"month": "2026-12", "spent": 1}
    assert credits.take(("c", "keypoints"))


def test_generation_never_goes_beyond_the_plan_allowance(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=12, tier="starter", keypoints_share=0,
                    feedback_share=0, segments=(10, 14), seed=18)
    sim.ai_used[sim.now().strftime("%Y-%m")] = 8  # the user spent 8 of Starter's 10 in the app
    pipeline = pipeline_for(tmp_path)
    load(pipeline, sim, ai_generation_budget=50)
    assert sim.ai_used_now() == 10
    assert sim.status_counts()[429] == 0


# ------------------------------------------------------------------------------ tiers


def test_each_tier_loads_completely_at_its_own_pace_without_a_429(tmp_path, start_sim):
    """Starter (100 an hour) needs more than one hourly run for this account, Professional
    (500) and Enterprise (2,000, answers without X-RateLimit-* headers) one; not one 429."""
    for tier in ("starter", "professional", "enterprise"):
        sim = start_sim(ConvoSimulator, conversations=45, tier=tier, segments=(2, 14), seed=19)
        pipeline = pipeline_for(tmp_path, f"convo_{tier}")
        counts = run_until_done(pipeline, sim, max_runs=6, page_size=100)
        assert sim.rate_limited == 0 and sim.status_counts()[429] == 0, tier
        assert_matches_sim(pipeline, sim)
        assert {r["id"] for r in rows(pipeline, "calendar_events")} == set(sim.events)
        assert all(n <= settings.HOURLY_LIMIT[tier] - settings.DEFAULT_RESERVE for n in counts), counts
        report = get_report("convo")
        if tier == "starter":
            assert len(counts) > 1, counts
            assert "Professional" in report.skipped["webhooks"]
            assert not sim.requests(pattern="/webhooks")
        else:
            assert len(counts) == 1, counts
            assert {r["id"] for r in rows(pipeline, "webhooks")} == set(sim.webhooks)
        if tier == "enterprise":  # no headers: the source counted its own requests of the hour
            own = pipeline.state["sources"]["convo"]["recent_requests"]
            assert sum(own.values()) == len(sim.requests())
        print(f"\n{tier}: {len(counts)} runs, requests per run {counts}, 429s: {sim.rate_limited}")
