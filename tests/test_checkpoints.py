"""Checkpointed loads (`checkpoint_items`): a long backfill is several dlt loads, each with its
state, so a kill -9 costs at most one checkpoint of repeated detail requests (and, on the
partner API, of daily quota units), never the whole run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from simulators.meetric_partner import MeetricPartnerSimulator
from sources._common.engine import DEFAULT_CHECKPOINT_ITEMS

from .partner_helpers import expected, loaded, partner_kwargs
from .test_meetric_partner_faults import assert_no_duplicates, attach, cli
from .utils import load_table_counts, make_pipeline, run

ROOT = str(Path(__file__).resolve().parents[1])  # the CLI runs this checkout's code
CHECKPOINT = 100
CONCURRENCY = 4
DETAIL = r"/conversations/[^/]+$"  # the per-conversation call (transcript and insights included)


def detail_ids(sim: MeetricPartnerSimulator) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in sim.requests("GET", DETAIL) if r.status == 200]


@pytest.mark.parametrize("next_day", [False, True], ids=["same-day", "next-day"])
def test_kill_9_at_90_percent_repeats_at_most_one_checkpoint(start_sim, tmp_path, next_day):
    sim = start_sim(MeetricPartnerSimulator, conversations=600, seed=8, span_days=20, processing_share=0,
                    requests_per_minute=None, daily_quota=5000)
    owed = sum(1 for c in sim.visible() if c.status == "completed")
    env = [("SOURCES__MEETRIC_PARTNER__CHECKPOINT_ITEMS", str(CHECKPOINT)),
           ("SOURCES__MEETRIC_PARTNER__HTTP__CONCURRENCY", str(CONCURRENCY)),
           ("RUNTIME__LOG_LEVEL", "WARNING"),
           ("PYTHONPATH", os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))]
    proc = cli(tmp_path, sim, sim.token, *env)
    deadline = time.monotonic() + 120
    while len(detail_ids(sim)) < 0.9 * owed and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()
    assert proc.wait() == -9, "the run finished before the kill: the test proved nothing"
    first = set(detail_ids(sim))
    assert len(first) >= 0.9 * owed
    day_one = set(sim._touched[(sim.token, sim.now().date().isoformat())])
    sim.clear_log()
    if next_day:
        sim.advance(days=1)
    finish = cli(tmp_path, sim, sim.token, *env)
    out, err = finish.communicate(timeout=180)
    assert finish.returncode == 0, out + err
    second = detail_ids(sim)
    repeated = first & set(second)
    assert len(repeated) <= CHECKPOINT, (len(repeated), len(first), len(second))
    assert len(second) == len(set(second)) == owed - len(first) + len(repeated)  # each asked once
    if next_day:  # the quota units of the new day: only conversations not loaded before, and one checkpoint
        day_two = sim._touched[(sim.token, sim.now().date().isoformat())]
        assert len(day_two & day_one) == len(repeated) <= CHECKPOINT
    pipeline = attach(tmp_path)
    assert loaded(pipeline) == expected(sim)
    assert_no_duplicates(pipeline)


def test_a_backfill_is_several_loads_and_one_run_summary(start_sim, tmp_path):
    sim = start_sim(MeetricPartnerSimulator, conversations=90, seed=3, span_days=20, processing_share=0,
                    requests_per_minute=None, daily_quota=None)
    pipeline = make_pipeline(tmp_path, "rounds")
    result = run(pipeline, "meetric_partner", **partner_kwargs(sim, checkpoint_items=20))
    assert result.ok, result.error
    owed = sum(1 for c in sim.visible() if c.status == "completed")
    details = sim.requests("GET", DETAIL)
    assert len(details) == len({r.path for r in details}) == owed  # nothing fetched twice
    assert load_table_counts(pipeline, "_dlt_loads")["_dlt_loads"] >= owed // 20  # a load per checkpoint
    assert result.rows["conversations"] == len(sim.visible())  # summed over the loads
    assert result.report.requests == len(sim.log)  # every round's requests
    assert not result.report.more_to_do and not result.report.waiting
    assert loaded(pipeline) == expected(sim)
    # a run with nothing new: one load, list requests only
    sim.clear_log()
    again = run(pipeline, "meetric_partner", **partner_kwargs(sim, checkpoint_items=20))
    assert again.ok and not sim.requests("GET", DETAIL)


def test_a_single_pipeline_run_stops_cleanly_at_the_checkpoint_and_the_next_continues(start_sim, tmp_path):
    from sources.meetric_partner import meetric_partner

    sim = start_sim(MeetricPartnerSimulator, conversations=60, seed=4, span_days=20, processing_share=0,
                    requests_per_minute=None, daily_quota=None)
    pipeline = make_pipeline(tmp_path, "scheduled")
    source = meetric_partner(**partner_kwargs(sim, checkpoint_items=25))
    pipeline.run(source).raise_on_failed_jobs()  # not an error
    from sources._common.report import get_report

    report = get_report("meetric_partner")
    assert report.more_to_do and "checkpoint" in report.waiting["conversations"]
    assert not any("checkpoint" in w for w in report.warnings)
    assert len(sim.requests("GET", DETAIL)) == 25
    from pipelines.runner import run_until_done

    run_until_done(pipeline, lambda: meetric_partner(**partner_kwargs(sim, checkpoint_items=25)))
    assert not get_report("meetric_partner").more_to_do
    assert loaded(pipeline) == expected(sim)


def test_checkpoint_items_default_and_validation():
    from sources._common.engine import checkpoint_items_setting
    from sources._common.errors import ConfigError

    assert checkpoint_items_setting(None) == DEFAULT_CHECKPOINT_ITEMS
    assert checkpoint_items_setting(0) == 0
    with pytest.raises(ConfigError):
        checkpoint_items_setting(-1)


@pytest.mark.parametrize("name", ["convo", "meemo", "meetlog", "meetric_partner"])
def test_one_run_until_done_loads_a_backfill_over_every_entity(name, start_sim, tmp_path, monkeypatch):
    """Rounds continue while they make progress, even when the count of records owed goes up
    (meetlog's transcripts appear once its reports are done) or stays put (convo fetches every
    transcript before any keypoints): a regression, both stopped after two or three rounds and
    left the rest to the next scheduled run."""
    from pipelines.runner import run_until_done
    from sources._common.report import get_report

    from .test_change_cycle import SCENARIOS, loaded_rows

    sc = SCENARIOS[name]
    sim = sc.sim(start_sim)
    monkeypatch.setenv(f"SOURCES__{name.upper()}__CHECKPOINT_ITEMS", "3")
    pipeline = make_pipeline(tmp_path, f"all_{name}")
    loads = run_until_done(pipeline, lambda: sc.source(sim))
    assert len(loads.infos) >= 4  # the checkpoint was live: several rounds
    assert not get_report(name).more_to_do
    want = sc.counts(sim)
    assert load_table_counts(pipeline, *want) == want
    sim.clear_log()
    pipeline.run(sc.source(sim)).raise_on_failed_jobs()
    assert loaded_rows(pipeline) == {} and not sim.requests(None, sc.detail), \
        [r.path for r in sim.requests(None, sc.detail)]


def test_while_the_partner_quota_is_counted_a_checkpoint_is_at_most_half_of_it(start_sim, tmp_path):
    """A kill -9 then spends at most half a day's quota units twice: a conversation fetched
    again on a later UTC day costs a unit again."""
    from sources.meetric_partner import meetric_partner, quota_checkpoint

    assert quota_checkpoint(2000, 1000) == 500 and quota_checkpoint(300, 1000) == 300
    assert quota_checkpoint(2000, 0) == 2000 and quota_checkpoint(0, 1000) == 0  # not counted; off
    sim = start_sim(MeetricPartnerSimulator, conversations=60, seed=5, span_days=20, processing_share=0,
                    requests_per_minute=None, daily_quota=None)
    pipeline = make_pipeline(tmp_path, "half_quota")
    pipeline.run(meetric_partner(**partner_kwargs(sim, daily_conversation_quota=40))).raise_on_failed_jobs()
    assert len(sim.requests("GET", DETAIL)) == 20  # the default checkpoint_items (2000), halved quota


def test_a_round_that_fails_after_checkpoints_still_counts_what_the_rounds_before_loaded(start_sim, tmp_path):
    import threading

    sim = start_sim(MeetricPartnerSimulator, conversations=90, seed=6, span_days=20, processing_share=0,
                    requests_per_minute=None, daily_quota=None)
    pipeline = make_pipeline(tmp_path, "fails_later")
    done = threading.Event()

    def revoke_in_round_two() -> None:  # the token is revoked once the second round is fetching
        while not done.is_set() and len(sim.requests("GET", DETAIL)) < 30:
            time.sleep(0.002)
        sim.tokens.pop(sim.token, None)

    watcher = threading.Thread(target=revoke_in_round_two, daemon=True)
    watcher.start()
    try:
        result = run(pipeline, "meetric_partner", **partner_kwargs(sim, checkpoint_items=20))
    finally:
        done.set()
        watcher.join()
    assert not result.ok and "token" in result.error.lower(), result.error
    assert result.rows and result.rows == {t: n for t, n in result.rows.items() if n}
    stored = load_table_counts(pipeline, "conversations", "summaries")
    assert result.rows["conversations"] == stored["conversations"] == len(sim.visible())  # round 1 listed all
    assert result.rows["summaries"] == stored["summaries"] >= 20  # round 1's details, at least
    assert result.report.requests == len(sim.log)  # every round's requests, the failed one's too
