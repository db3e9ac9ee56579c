"""convo: injected faults and failed runs converge to a clean run's tables."""

from __future__ import annotations

import pytest

from simulators.base import Faults
from simulators.convo import ConvoSimulator
from tests.test_convo import FAST, assert_matches_sim, load, pipeline_for, snapshot

SIM = {"conversations": 20, "tier": "professional", "segments": (2, 14), "seed": 21}


def clean_snapshot(tmp_path, sim: ConvoSimulator) -> dict:
    """What a clean run loads from `sim` (the same account the faulty runs then read)."""
    pipeline = pipeline_for(tmp_path, "clean")
    load(pipeline, sim)
    sim.clear_log()
    return snapshot(pipeline)


def test_faults_leave_the_tables_equal_to_a_clean_runs(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, **SIM)
    expected = clean_snapshot(tmp_path, sim)
    sim.faults = Faults(error_5xx=0.10, rate_429=0.05, drop=0.02, truncate=0.02, seed=5)
    pipeline = pipeline_for(tmp_path, "faulty")
    load(pipeline, sim)
    assert sum(1 for r in sim.requests() if r.fault) >= 10  # faults really happened
    assert snapshot(pipeline) == expected
    assert sim.rate_limited == 0


def test_a_run_that_fails_midway_is_completed_by_the_next_without_duplicates(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, **SIM)
    expected = clean_snapshot(tmp_path, sim)
    pipeline = pipeline_for(tmp_path, "broken")
    # the fourth request (the list's second page) fails past every retry: the run fails
    sim.faults = Faults(script=[None, None, None, "5xx", "5xx"])
    with pytest.raises(Exception, match="failed after 2 attempts"):
        load(pipeline, sim, http={**FAST, "max_retries": 1})
    # transcripts fail one in three: those conversations are retried by the next run
    sim.faults = Faults(error_5xx=0.3, seed=9, exempt=lambda path: not path.endswith("/transcript"))
    load(pipeline, sim, http={**FAST, "max_retries": 0})
    failed = {r.path for r in sim.requests(pattern="/transcript$") if r.fault}
    assert failed
    sim.faults = Faults()
    load(pipeline, sim)
    assert snapshot(pipeline) == expected
    assert_matches_sim(pipeline, sim)


def test_generation_under_faults_never_goes_beyond_the_budget(tmp_path, start_sim):
    sim = start_sim(ConvoSimulator, conversations=16, tier="professional", keypoints_share=0,
                    feedback_share=0, segments=(10, 12), seed=22)
    sim.faults = Faults(error_5xx=0.10, rate_429=0.05, drop=0.05, truncate=0.02, seed=3)
    pipeline = pipeline_for(tmp_path)
    for _ in range(2):
        load(pipeline, sim, ai_generation_budget=4)
        sim.advance(hours=2)
    assert 0 < sim.ai_used_now() <= 4
