"""Benchmark harness: one run, three contenders, ratios printed side by side.

For a source, a benchmark module (bench/bench_<source>.py) defines:
    SOURCE        the registered source name
    SIM_KWARGS    simulator arguments for the benchmark account (limits off)
    CONCURRENCY   per-item request concurrency, shared by `floor` and `ours`
    floor(config, concurrency) -> int     bare httpx fetch of the same pages; returns requests
    rest_api_source(config) -> DltSource  dlt's generic rest_api source for the same API
    (optional) ours_kwargs(config) -> dict  extra source arguments

The simulator runs in its own process (so it never competes with the measured code for
the GIL), and each contender runs in a fresh child process that reports its wall time
and peak RSS (ru_maxrss), so one contender's memory never shows up in another's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_simulator(name: str, sim_kwargs: dict[str, Any]) -> tuple[subprocess.Popen, dict]:
    args = [sys.executable, "-m", "simulators", name]
    for key, value in sim_kwargs.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, cwd=ROOT, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"simulator {name} did not start")
    return proc, json.loads(line)


def _child(bench: str, contender: str, config: dict, workdir: str) -> dict:
    """Runs inside the child process: one contender, measured."""
    module = importlib.import_module(f"bench.{bench}")
    import dlt

    concurrency = getattr(module, "CONCURRENCY", 4)
    started = time.perf_counter()
    requests = None
    rows = None
    if contender == "floor":
        requests = module.floor(config, concurrency)
    else:
        pipeline = dlt.pipeline(pipeline_name=f"bench_{contender}", pipelines_dir=workdir,
                                destination=dlt.destinations.duckdb(os.path.join(workdir, "b.duckdb")),
                                dataset_name="bench")
        if contender == "ours":
            from pipelines.registry import get
            from sources._common.state import apply_deletions

            extra = module.ours_kwargs(config) if hasattr(module, "ours_kwargs") else {}
            http = {"requests_per_minute": 0, "concurrency": concurrency, **extra.pop("http", {})}
            from pipelines.runner import preferred_file_format

            source = get(module.SOURCE).source()(**config, http=http, **extra)
            pipeline.run(source, loader_file_format=preferred_file_format(pipeline)).raise_on_failed_jobs()
            apply_deletions(pipeline)
            from sources._common.report import get_report

            requests = get_report(module.SOURCE).requests
            info = pipeline.last_trace.last_normalize_info
            rows = sum(n for t, n in info.row_counts.items() if not t.startswith("_dlt"))
            seconds = time.perf_counter() - started
            # the quality bar: a second run with nothing new takes under 2 s
            again = time.perf_counter()
            source = get(module.SOURCE).source()(**config, http=http, **extra)
            pipeline.run(source, loader_file_format=preferred_file_format(pipeline)).raise_on_failed_jobs()
            second = {"second_seconds": time.perf_counter() - again,
                      "second_requests": get_report(module.SOURCE).requests}
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return {"seconds": seconds, "peak_mb": peak_mb, "requests": requests, "rows": rows, **second}
        else:
            pipeline.run(module.rest_api_source(config)).raise_on_failed_jobs()
        info = pipeline.last_trace.last_normalize_info
        rows = sum(n for t, n in info.row_counts.items() if not t.startswith("_dlt"))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "requests": requests, "rows": rows}


def measure(bench: str, contender: str, config: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="meeting-elt-bench-") as workdir:
        out = subprocess.run(
            [sys.executable, "-m", "bench.harness", "--child", bench, contender, json.dumps(config), workdir],
            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "RUNTIME__LOG_LEVEL": "ERROR"})
    if out.returncode != 0:
        raise RuntimeError(f"{contender} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(bench: str, *, sizes: list[int] | None = None, skip_rest_api: bool = False,
        latency_ms: float = 0) -> dict:
    """Runs floor, ours and rest_api against one simulator; prints and returns the figures."""
    module = importlib.import_module(f"bench.{bench}")
    size_key = getattr(module, "SIZE_KEY", None)
    base_kwargs = dict(module.SIM_KWARGS)
    if latency_ms:
        base_kwargs["latency_seconds"] = latency_ms / 1000
    proc, config = start_simulator(module.SOURCE, base_kwargs)
    try:
        floor = measure(bench, "floor", config)
        ours = measure(bench, "ours", config)
        rest = None if skip_rest_api else measure(bench, "rest_api", config)
    finally:
        proc.kill()
    results = {"floor": floor, "ours": ours, "rest_api": rest}
    memory = []
    if sizes and size_key:
        for size in sizes:
            proc, cfg = start_simulator(module.SOURCE, {**base_kwargs, size_key: size})
            try:
                memory.append((size, measure(bench, "ours", cfg)))
            finally:
                proc.kill()
    _print(module, results, memory, size_key, latency_ms)
    results["memory"] = memory
    return results


def _print(module: Any, r: dict, memory: list, size_key: str | None, latency_ms: float) -> None:
    floor, ours, rest = r["floor"], r["ours"], r["rest_api"]
    print(f"\n== {module.SOURCE}: {module.SIM_KWARGS} concurrency={getattr(module, 'CONCURRENCY', 4)} "
          f"latency={latency_ms:g}ms per request")
    print(f"{'contender':<10} {'seconds':>8} {'requests':>9} {'rows':>8} {'peak MB':>8}")
    for name, m in (("floor", floor), ("ours", ours), ("rest_api", rest)):
        if m:
            print(f"{name:<10} {m['seconds']:>8.2f} {m['requests'] or '-':>9} {m['rows'] or '-':>8} {m['peak_mb']:>8.0f}")
    print(f"ours / floor     = {ours['seconds'] / floor['seconds']:.2f}  (bar: <= 1.5)")
    print(f"second run, nothing new: {ours['second_seconds']:.2f}s, {ours['second_requests']} requests  (bar: < 2 s)")
    if rest:
        print(f"rest_api / ours  = {rest['seconds'] / ours['seconds']:.2f}  (bar: >= 3)")
    for size, m in memory:
        print(f"peak memory, {size_key}={size}: {m['peak_mb']:.0f} MB ({m['rows']} rows, {m['seconds']:.1f}s)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        bench, contender, config, workdir = sys.argv[2:6]
        print(json.dumps(_child(bench, contender, json.loads(config), workdir)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="*", help="bench module names, e.g. bench_meetric_partner")
    parser.add_argument("--sizes", default="", help="comma-separated account sizes for the memory check")
    parser.add_argument("--skip-rest-api", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=0,
                        help="network latency the simulator adds to every answer (0: bare loopback)")
    args = parser.parse_args()
    benches = args.benches or sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "bench"))
                                     if f.startswith("bench_") and f.endswith(".py"))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    for bench in benches:
        run(bench, sizes=sizes, skip_rest_api=args.skip_rest_api, latency_ms=args.latency_ms)


if __name__ == "__main__":
    main()
