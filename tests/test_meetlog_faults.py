"""meetlog: injected faults, failed runs and spent budgets all converge to a clean run's tables."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from simulators.base import Faults
from simulators.meetlog import MeetlogSimulator
from sources._common.report import get_report
from sources.meetlog import meetlog
from tests.test_meetlog import FAST, TABLES, assert_matches_sim, load, pipeline_for
from tests.utils import rows, run_strict


def snapshot(pipeline) -> dict[str, list]:
    """Every table's rows (without dlt's columns or load-time marks), in a stable order."""
    out = {}
    for table in TABLES:
        found = rows(pipeline, table)
        out[table] = sorted(
            (tuple(sorted((k, str(v)) for k, v in r.items() if k != "deleted_at")) + (r.get("deleted_at") is None,)
             for r in found), key=str)
    return out


def change(sim: MeetlogSimulator) -> None:
    """What happens at the vendor between two runs: every kind of late data and change."""
    processing = [t for t in sim.live_transcripts() if t.status == "processing"]
    completed = [t for t in sim.live_transcripts() if t.status == "completed"]
    sim.advance(days=30)
    sim.complete(processing[0].id)
    sim.add_report(completed[-1].id)
    sim.add_transcript(status="completed")
    sim.add_transcript(status="processing")
    project = sorted(sim.projects.values(), key=lambda p: p.created_at)
    sim.move(project[0].transcript_ids[0], project[-1].id)
    sim.delete_transcript(completed[2].id)
    sim.rename(completed[3].id, "Renamed — 改名")


def test_faults_leave_the_tables_equal_to_a_clean_run(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=24, projects=4, requests_per_minute=None)
    clean, faulty = pipeline_for(tmp_path, "clean"), pipeline_for(tmp_path, "faulty")
    for step in range(2):
        sim.faults = Faults()
        load(clean, sim, sweep_interval_hours=0)
        sim.faults = Faults(error_5xx=0.10, rate_429=0.05, drop=0.02, truncate=0.02, seed=11 + step)
        sim.clear_log()
        load(faulty, sim, sweep_interval_hours=0)
        injected = [r.fault for r in sim.log if r.fault]
        assert {"5xx", "429"} <= set(injected) and len(injected) >= 8, injected
        assert snapshot(faulty) == snapshot(clean)
        assert_matches_sim(faulty, sim)
        change(sim)


def test_a_run_that_fails_midway_converges_on_the_next(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=16, projects=4, requests_per_minute=None)
    clean, broken = pipeline_for(tmp_path, "clean"), pipeline_for(tmp_path, "broken")
    load(clean, sim)
    load(broken, sim)
    change(sim)
    load(clean, sim, sweep_interval_hours=0)
    # the second run dies half way (reports done, then the transcripts list keeps failing
    # past every retry), and a detail call fails too
    sim.faults = Faults(error_5xx=1.0, exempt=lambda path: not path.endswith(("/transcripts", "/reports")))
    sim.faults.script = [None, "5xx", "5xx", "5xx"]
    with pytest.raises(Exception, match="503"):
        run_strict(broken, meetlog(**sim.source_config(), page_size=4,
                                   http={**FAST, "max_retries": 2}))
    sim.faults = Faults()
    load(broken, sim, sweep_interval_hours=0)
    assert snapshot(broken) == snapshot(clean)
    assert_matches_sim(broken, sim)


def test_a_spent_request_budget_loads_what_was_fetched_and_the_next_run_continues(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=30, projects=4, requests_per_minute=None)
    pipeline = pipeline_for(tmp_path)
    runs = 0
    while True:
        runs += 1
        assert runs <= 12, "the backfill never finished"
        load(pipeline, sim, page_size=10, http={**FAST, "max_requests": 20})
        report = get_report("meetlog")
        if not any("spent" in w for w in report.warnings):
            break
        assert report.waiting  # what is left is reported
        # the shared client checks the budget before each request, racing its worker threads
        assert report.requests <= 20 + 4
    assert runs >= 4
    assert_matches_sim(pipeline, sim)
    # nothing twice: one row per record
    for table in ("transcripts", "reports", "projects"):
        ids = [r["id"] for r in rows(pipeline, table)]
        assert len(ids) == len(set(ids))


KILLED_RUN = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from sources.meetlog import meetlog
from tests.utils import make_pipeline, run_strict
pipeline = make_pipeline(Path({tmp!r}), "killed", dataset="killed_data")
print("ready", flush=True)
run_strict(pipeline, meetlog(api_token={token!r}, base_url={url!r}, page_size=4,
                             http={{"requests_per_minute": 600, "concurrency": 2}}))
print("finished", flush=True)
"""


def test_a_run_killed_at_a_random_point_converges_on_the_next(tmp_path, start_sim):
    sim = start_sim(MeetlogSimulator, transcripts=24, projects=4, requests_per_minute=None)
    clean = pipeline_for(tmp_path, "clean")
    load(clean, sim)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = KILLED_RUN.format(root=root, tmp=str(tmp_path), token=sim.token, url=sim.base_url)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=root,
                            env={**os.environ, "RUNTIME__LOG_LEVEL": "ERROR"})
    assert proc.stdout.readline().strip() == "ready"
    sim.clear_log()
    deadline = time.monotonic() + 30  # on a busy machine the run may take seconds to start
    while not sim.log and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(random.Random(5).uniform(0.2, 1.2))  # the run takes ~7 s at 10 requests/s
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < len(sim.log) < 60, "killed mid-run"
    killed = pipeline_for(tmp_path, "killed")
    load(killed, sim)
    assert snapshot(killed) == snapshot(clean)
    assert_matches_sim(killed, sim)
