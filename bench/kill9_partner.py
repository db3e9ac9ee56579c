"""What a kill -9 costs a partner backfill: detail requests asked again by the next run.

    python -m bench.kill9_partner [--conversations 4000] [--kill-at 0.9] [--checkpoint-items 500]

Starts the partner simulator (limits off), runs `meeting-elt run meetric_partner` as a
subprocess, kills it with SIGKILL once the simulator has answered `--kill-at` of the detail
requests a complete load needs, runs it again to completion, and prints how many
conversations had their detail asked for in both runs (bar: at most one checkpoint), and
whether the tables equal what the simulator holds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
DETAIL = r"/conversations/[^/]+$"


def _cli(sim, workdir: str, checkpoint_items: int | None) -> subprocess.Popen:
    env = {**os.environ, "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false", "RUNTIME__LOG_LEVEL": "ERROR",
           "PYTHONPATH": ROOT,
           "SOURCES__MEETRIC_PARTNER__BASE_URL": sim.base_url,
           "SOURCES__MEETRIC_PARTNER__API_TOKEN": sim.token,
           "SOURCES__MEETRIC_PARTNER__HTTP__REQUESTS_PER_MINUTE": "0",
           "SOURCES__MEETRIC_PARTNER__DAILY_CONVERSATION_QUOTA": "0"}  # the simulator counts none either
    if checkpoint_items is not None:
        env["SOURCES__MEETRIC_PARTNER__CHECKPOINT_ITEMS"] = str(checkpoint_items)
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "meetric_partner", "--json",
         "--duckdb-file", os.path.join(workdir, "warehouse.duckdb"), "--pipelines-dir",
         os.path.join(workdir, "pipelines")],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def measure(conversations: int, kill_at: float, checkpoint_items: int | None) -> dict:
    from pipelines.runner import make_destination, make_pipeline
    from simulators.meetric_partner import MeetricPartnerSimulator
    from sources._common.engine import DEFAULT_CHECKPOINT_ITEMS
    from tests.partner_helpers import expected, loaded

    sim = MeetricPartnerSimulator(conversations=conversations, seed=11, span_days=29, processing_share=0,
                                  requests_per_minute=None, daily_quota=None)
    sim.start()
    try:
        def details() -> list[str]:
            return [r.path.rsplit("/", 1)[1] for r in sim.requests("GET", DETAIL) if r.status == 200]

        owed = sum(1 for c in sim.visible() if c.status == "completed")
        with tempfile.TemporaryDirectory(prefix="meeting-elt-kill9-") as workdir:
            started = time.monotonic()
            proc = _cli(sim, workdir, checkpoint_items)
            while len(details()) < kill_at * owed and proc.poll() is None:
                time.sleep(0.01)
            proc.kill()
            killed = proc.wait() == -9
            first = set(details())
            killed_after = time.monotonic() - started
            sim.clear_log()
            again = _cli(sim, workdir, checkpoint_items)
            out, err = again.communicate()
            second = details()
            pipeline = make_pipeline("meetric_partner", destination=make_destination(
                "duckdb", os.path.join(workdir, "warehouse.duckdb")), pipelines_dir=os.path.join(workdir, "pipelines"))
            equal = again.returncode == 0 and loaded(pipeline) == expected(sim)
    finally:
        sim.stop()
    return {"conversations": conversations, "details_needed": owed, "killed": killed,
            "killed_after_seconds": round(killed_after, 1), "details_before_kill": len(first),
            "details_after": len(second), "repeated": len(first & set(second)),
            "checkpoint_items": DEFAULT_CHECKPOINT_ITEMS if checkpoint_items is None else checkpoint_items,
            "tables_equal_a_clean_load": equal, "second_exit": again.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=4000)
    parser.add_argument("--kill-at", type=float, default=0.9)
    parser.add_argument("--checkpoint-items", type=int, default=None, help="default: the source's default")
    args = parser.parse_args()
    r = measure(args.conversations, args.kill_at, args.checkpoint_items)
    print(f"{r['conversations']:,} conversations, {r['details_needed']:,} detail requests needed; "
          f"killed (SIGKILL: {r['killed']}) after {r['details_before_kill']:,} answered "
          f"({r['killed_after_seconds']} s)")
    print(f"next run: {r['details_after']:,} detail requests, {r['repeated']:,} of them repeated "
          f"(checkpoint_items={r['checkpoint_items']}; bar: at most one checkpoint); "
          f"tables equal a clean load: {r['tables_equal_a_clean_load']}")
    print(r)


if __name__ == "__main__":
    main()
