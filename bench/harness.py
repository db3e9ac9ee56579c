"""Benchmark harness: one run, three contenders, ratios printed side by side.

For a source, a benchmark module (bench/bench_<source>.py) defines:
    SOURCE        the registered source name
    SIM_KWARGS    simulator arguments for the benchmark account (limits off)
    SIZE_KEY      the simulator argument that sets the account's size
    SIZES         two account sizes, 4x apart (the memory growth is measured between them)
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
        from pipelines.runner import make_destination

        # DuckDB as the CLI loads into it (its load memory limit), for ours and rest_api alike
        pipeline = dlt.pipeline(pipeline_name=f"bench_{contender}", pipelines_dir=workdir,
                                destination=make_destination("duckdb", os.path.join(workdir, "b.duckdb")),
                                dataset_name="bench")
        if contender == "ours":
            from pipelines.registry import get

            extra = module.ours_kwargs(config) if hasattr(module, "ours_kwargs") else {}
            http = {"requests_per_minute": 0, "concurrency": concurrency, **extra.pop("http", {})}
            from pipelines.runner import preferred_file_format

            if os.environ.get("BENCH_CHECKPOINT_ITEMS"):
                extra["checkpoint_items"] = int(os.environ["BENCH_CHECKPOINT_ITEMS"])
            from pipelines.runner import run_until_done

            def load() -> Any:
                """As the CLI runs it: a load per checkpoint, until nothing more is owed."""
                done = run_until_done(pipeline, lambda: get(module.SOURCE).source()(**config, http=http, **extra),
                                      loader_file_format=preferred_file_format(pipeline))
                for info in done.infos:
                    info.raise_on_failed_jobs()
                return done

            loads = load()
            requests, first_loads = loads.report.requests, len(loads.infos)
            tables = loads.rows
            rows = sum(tables.values())
            seconds = time.perf_counter() - started
            biggest = max(tables, key=tables.get) if tables else None
            # the quality bar: a second run with nothing new takes under 2 s
            again = time.perf_counter()
            loads = load()
            second = {"second_seconds": time.perf_counter() - again, "second_requests": loads.report.requests,
                      "loads": first_loads}
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return {"seconds": seconds, "peak_mb": peak_mb, "requests": requests, "rows": rows,
                    "biggest": biggest, "biggest_rows": tables.get(biggest, 0), **second}
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
            cwd=ROOT, capture_output=True, text=True,
            env={**os.environ, "RUNTIME__LOG_LEVEL": "ERROR", "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false"})
    if out.returncode != 0:
        raise RuntimeError(f"{contender} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time, with every run's seconds beside it (`all_seconds`)."""
    ranked = sorted(runs, key=lambda r: r["seconds"])
    return {**ranked[(len(ranked) - 1) // 2], "all_seconds": [r["seconds"] for r in runs]}


def run(bench: str, *, sizes: list[int] | None = None, rest_api: bool = True,
        latency_ms: float = 0, repeat: int = 1) -> list[dict]:
    """For each account size: floor and ours (and rest_api at the largest size) against one
    simulator. Returns one result per size. With `repeat`, floor and ours run in turns
    (floor, ours, floor, ours, ...) so that a slow spell of the shared machine falls on both,
    and each keeps its median run."""
    module = importlib.import_module(f"bench.{bench}")
    sizes = sizes or list(getattr(module, "SIZES", ())) or [module.SIM_KWARGS[module.SIZE_KEY]]
    out = []
    for size in sizes:
        kwargs = {**module.SIM_KWARGS, module.SIZE_KEY: size}
        if latency_ms:
            kwargs["latency_seconds"] = latency_ms / 1000
        proc, config = start_simulator(module.SOURCE, kwargs)
        try:
            floors, ourses = [], []
            for _ in range(max(1, repeat)):
                floors.append(measure(bench, "floor", config))
                ourses.append(measure(bench, "ours", config))
            floor, ours = median_run(floors), median_run(ourses)
            rest = measure(bench, "rest_api", config) if rest_api and size == max(sizes) else None
        finally:
            proc.kill()
        out.append({"source": module.SOURCE, "size": size, "floor": floor, "ours": ours, "rest_api": rest})
    return out


def print_table(results: list[list[dict]], latency_ms: float) -> None:
    """One row per source and size: ratios measured in this run, rows/s, peak memory."""
    runs = len(results[0][0]["ours"].get("all_seconds", [1])) if results and results[0] else 1
    print(f"\nnetwork: {'bare loopback' if not latency_ms else f'{latency_ms:g} ms per answer'}; "
          "limits and pacing off for both; the same concurrency"
          + (f"; the median of {runs} runs each, run in turns" if runs > 1 else ""))
    header = ("| source | account | floor | ours | ours / floor (bar <= 1.5) | rows/s of the biggest table "
              "| peak MB | growth over a 4x smaller account (bar <= 1.2) | rest_api / ours (bar >= 3) | second run "
              "| loads (checkpoints) |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for per_size in results:
        smallest = per_size[0]
        for r in per_size:
            floor, ours, rest = r["floor"], r["ours"], r["rest_api"]
            growth = ours["peak_mb"] / smallest["ours"]["peak_mb"] if r is not smallest else None
            rate = ours["biggest_rows"] / ours["seconds"] if ours["seconds"] else 0
            versus_rest = f"{rest['seconds'] / ours['seconds']:.2f}" if rest else "-"
            print(f"| {r['source']} | {r['size']:,} | {floor['seconds']:.2f} s | {ours['seconds']:.2f} s "
                  f"| {ours['seconds'] / floor['seconds']:.2f} | {rate:,.0f} ({ours['biggest']}) "
                  f"| {ours['peak_mb']:.0f} | {f'x{growth:.2f}' if growth else '-'} "
                  f"| {versus_rest} "
                  f"| {ours['second_seconds']:.2f} s, {ours['second_requests']} requests "
                  f"| {ours.get('loads', '-')} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        bench, contender, config, workdir = sys.argv[2:6]
        print(json.dumps(_child(bench, contender, json.loads(config), workdir)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="*", help="bench module names, e.g. bench_meetric_partner")
    parser.add_argument("--sizes", default="", help="comma-separated account sizes (default: the module's SIZES)")
    parser.add_argument("--skip-rest-api", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=0,
                        help="network latency the simulator adds to every answer (0: bare loopback)")
    parser.add_argument("--json", action="store_true", help="also print every figure as JSON")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run floor and ours this many times, in turns, and keep each one's median "
                             "(the shared machine moves single runs by about 0.3 in the ratio)")
    parser.add_argument("--checkpoint-items", type=int, default=None,
                        help="the sources' checkpoint_items for `ours` (default: the sources' default; 0: off)")
    args = parser.parse_args()
    if args.checkpoint_items is not None:
        os.environ["BENCH_CHECKPOINT_ITEMS"] = str(args.checkpoint_items)
    benches = args.benches or sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "bench"))
                                     if f.startswith("bench_") and f.endswith(".py"))
    sizes = [int(s) for s in args.sizes.split(",") if s] or None
    results = []
    for bench in benches:
        module = importlib.import_module(f"bench.{bench}")
        results.append(run(bench, sizes=sizes, rest_api=not args.skip_rest_api and hasattr(module, "rest_api_source"),
                           latency_ms=args.latency_ms, repeat=args.repeat))
        print(f"measured {bench}", file=sys.stderr)
    print_table(results, args.latency_ms)
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
