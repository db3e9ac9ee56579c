"""Where a full load's time goes: fetch, our code, dlt's extract, normalize, load.

    python -m bench.profile [source ...] [--size N] [--format parquet|jsonl|insert_values]
                            [--no-sampler] [--floor] [--rate HZ]

For each source (default: all five), at its bench module's larger size (`SIZES[-1]`) unless
`--size` says otherwise: starts the simulator (limits off, as `bench.harness` does), runs one
full load into a fresh DuckDB file in a child process under py-spy (holding the file open
during the load step, as `run_until_done` does for the CLI), and prints one Markdown table row.

How the split is made: dlt's trace (`pipeline.last_trace`) gives the wall time of each step
(extract, normalize, load). Extract is split by py-spy's samples of the main thread, idle
included (`--idle`), so the fractions are of wall time: a sample waiting for a worker thread's
request or inside the HTTP layer (httpx, `sources/_common/http.py`, the fan-out's wait) is
"fetch" (HTTP + JSON parse); otherwise the innermost frame that is ours (`sources/`,
`pipelines/`) or dlt's names the owner: "ours" (engine + row shaping, and the pyarrow/orjson
calls it makes) or "dlt extract" (dlt's pipe, item buffering and writing). `--floor` also
times the harness's bare-httpx fetch of the same pages. The process's CPU time (all threads)
and the time spent in the cyclic garbage collector (timed by `gc.callbacks`) are printed
beside the total: on a busy 2-core machine they are steadier than wall times.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

from bench.harness import ROOT, start_simulator

SOURCES = ("convo", "meemo", "meetlog", "meetric", "meetric_partner")
FETCH_MARKS = ("/httpx/", "/httpcore/", "/h11/", "/anyio/", "/ssl.py", "/socket.py", "/selectors.py",
               "/sources/_common/http.py", "/sources/_common/sending.py", "/sources/_common/pacing.py", "/concurrent/futures/")
STEPS = ("extract", "normalize", "load")


def _child(source: str, config: dict, workdir: str, out_path: str, file_format: str | None) -> None:
    import threading

    import dlt

    from pipelines.registry import get
    from pipelines.runner import make_destination, preferred_file_format

    module = importlib.import_module(f"bench.bench_{source}")
    extra = module.ours_kwargs(config) if hasattr(module, "ours_kwargs") else {}
    extra.setdefault("checkpoint_items", 0)  # one load, profiled whole (the harness measures checkpoints)
    http = {"requests_per_minute": 0, "concurrency": getattr(module, "CONCURRENCY", 4), **extra.pop("http", {})}
    pipeline = dlt.pipeline(pipeline_name="profile", pipelines_dir=workdir,
                            destination=make_destination("duckdb", os.path.join(workdir, "p.duckdb")),
                            dataset_name="profile")
    import gc
    gc_time = {"s": 0.0, "at": 0.0, "n": 0}

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_time["at"] = time.perf_counter()
        else:
            gc_time["s"] += time.perf_counter() - gc_time["at"]
            gc_time["n"] += info["generation"] == 2

    gc.callbacks.append(on_gc)
    cpu = time.process_time()
    started = time.perf_counter()
    src = get(source).source()(**config, http=http, **extra)
    fmt = None if file_format == "default" else (file_format or preferred_file_format(pipeline))
    from pipelines.duckdb_loads import duckdb_held_open_while_loading

    with duckdb_held_open_while_loading(pipeline):  # as `run_until_done` loads, for the CLI and the DAGs
        pipeline.run(src, loader_file_format=fmt).raise_on_failed_jobs()
    total = time.perf_counter() - started
    cpu = time.process_time() - cpu
    steps = {s.step: (s.finished_at - s.started_at).total_seconds() for s in pipeline.last_trace.steps}
    info = pipeline.last_trace.last_normalize_info
    rows = {t: n for t, n in info.row_counts.items() if not t.startswith("_dlt")}
    from dlt.common import json as dlt_json

    state_bytes = len(dlt_json.typed_dumpb(pipeline.state))  # dlt decodes, hashes and encodes it every step
    with open(out_path, "w") as f:
        json.dump({"state_bytes": state_bytes, "total": total, "cpu": cpu, "gc": gc_time["s"], "gc_full": gc_time["n"], "steps": steps, "rows": rows, "format": fmt,
                   "main_tid": threading.main_thread().native_id}, f)


def _frames(stack: str) -> list[str]:
    return stack.split(";")


def classify(raw: str, main_tid: int) -> dict[str, Counter]:
    """Main-thread samples per step, and within extract per owner."""
    per_step: dict[str, Counter] = {s: Counter() for s in STEPS}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack.startswith(f"thread ({main_tid})"):
            continue
        frames = _frames(stack)[1:]
        step = next((s for s in STEPS for f in frames if f.startswith(f"Pipeline.{s} (")), None)
        if step is None:
            continue
        n = int(count)
        if step != "extract":
            per_step[step]["all"] += n
            continue
        owner = "dlt"
        if any(m in f for f in frames for m in FETCH_MARKS):
            owner = "fetch"
        else:
            for f in reversed(frames):
                if "/sources/" in f or "/pipelines/" in f and "/dlt/" not in f:
                    owner = "ours"
                    break
                if "/dlt/" in f:
                    owner = "dlt"
                    break
        per_step["extract"][owner] += n
    return per_step


def profile(source: str, size: int | None, *, file_format: str | None, sampler: bool, rate: int,
            floor: bool, keep: str | None = None) -> dict:
    module = importlib.import_module(f"bench.bench_{source}")
    size = size or max(module.SIZES)
    proc, config = start_simulator(module.SOURCE, {**module.SIM_KWARGS, module.SIZE_KEY: size})
    env = {**os.environ, "RUNTIME__LOG_LEVEL": "ERROR", "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false"}
    try:
        floor_s = None
        if floor:
            started = time.perf_counter()
            module.floor(config, getattr(module, "CONCURRENCY", 4))
            floor_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="meeting-elt-profile-") as workdir:
            out_path, raw_path = os.path.join(workdir, "out.json"), os.path.join(workdir, "spy.txt")
            cmd = [sys.executable, "-m", "bench.profile", "--child", source, json.dumps(config), workdir,
                   out_path, file_format or ""]
            spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
            if sampler and os.path.exists(spy):
                cmd = [spy, "record", "--idle", "--threads", "--nonblocking", "--full-filenames",
                       "-r", str(rate), "-f", "raw", "-o", raw_path, "--"] + cmd
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL if sampler else None)
            with open(out_path) as f:
                result = json.load(f)
            result["split"] = None
            if os.path.exists(raw_path):
                with open(raw_path) as f:
                    result["split"] = classify(f.read(), result["main_tid"])["extract"]
                if keep:
                    shutil.copy(raw_path, keep)
    finally:
        proc.kill()
    result.update(source=source, size=size, floor=floor_s)
    return result


HEADER = ("| source (account) | rows | total (process CPU, of it GC) | fetch (HTTP + JSON) | ours (engine + shaping) "
          "| dlt extract | normalize | load | other |")


def row(r: dict) -> str:
    steps, total = r["steps"], r["total"]
    extract = steps.get("extract", 0)
    split = r["split"] or {}
    samples = sum(split.values())

    def part(name: str) -> str:
        if not samples:
            return "?"
        s = extract * split.get(name, 0) / samples
        return f"{s:.2f} s ({100 * s / total:.0f}%)"

    def step(name: str) -> str:
        s = steps.get(name, 0)
        return f"{s:.2f} s ({100 * s / total:.0f}%)"

    other = total - sum(steps.get(s, 0) for s in STEPS)
    floor = f", floor {r['floor']:.2f} s" if r.get("floor") else ""
    return (f"| {r['source']} ({r['size']:,}) | {sum(r['rows'].values()):,} "
            f"| {total:.2f} s ({r['cpu']:.2f} s, GC {r['gc']:.2f} s){floor} "
            f"| {part('fetch')} | {part('ours')} | {part('dlt')} | {step('normalize')} | {step('load')} "
            f"| {other:.2f} s |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        source, config, workdir, out_path, fmt = sys.argv[2:7]
        _child(source, json.loads(config), workdir, out_path, fmt or None)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", help=f"any of {', '.join(SOURCES)} (default: all)")
    parser.add_argument("--size", type=int, default=None, help="account size (default: the bench's larger size)")
    parser.add_argument("--format", default=None, help="loader file format (default: the runner's choice; "
                        "'default': dlt's own)")
    parser.add_argument("--no-sampler", action="store_true", help="no py-spy: only dlt's step timings")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--floor", action="store_true", help="also time the bare-httpx floor")
    parser.add_argument("--json", action="store_true", help="also print every figure as JSON (stderr)")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="keep py-spy's raw samples as DIR/<source>.txt (e.g. for a flame graph)")
    args = parser.parse_args()
    unknown = set(args.sources) - set(SOURCES)
    if unknown:
        parser.error(f"unknown source(s): {', '.join(sorted(unknown))}")
    print(HEADER)
    print("|---" * (HEADER.count("|") - 1) + "|")
    for source in args.sources or SOURCES:
        r = profile(source, args.size, file_format=args.format, sampler=not args.no_sampler, rate=args.rate,
                    floor=args.floor, keep=os.path.join(args.keep, f"{source}.txt") if args.keep else None)
        print(row(r), flush=True)
        if args.json:
            print(json.dumps(r), file=sys.stderr)


if __name__ == "__main__":
    main()
