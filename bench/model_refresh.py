"""The meetings model on the benchmark accounts: how long a refresh takes, and a full read
of each view and the README's three analyst queries.

    python -m bench.model_refresh [bench_meetric bench_meetric_partner …]

Loads each bench module's account (its `SIM_KWARGS`, limits off) into one DuckDB file in
a temporary folder, then refreshes the model three times (the median is printed) and reads.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import ROOT, start_simulator

DEFAULT = ("bench_meetric_partner", "bench_meetric", "bench_meemo", "bench_meetlog", "bench_convo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="*", default=list(DEFAULT))
    args = parser.parse_args()

    import importlib

    import dlt
    import duckdb

    from pipelines.model import refresh_meetings_model
    from pipelines.runner import make_pipeline, run_source

    with tempfile.TemporaryDirectory(prefix="meeting-elt-model-bench-") as root:
        path = str(Path(root) / "bench.duckdb")
        destination = dlt.destinations.duckdb(path)
        for bench in args.benches:
            module = importlib.import_module(f"bench.{bench}")
            proc, config = start_simulator(module.SOURCE, module.SIM_KWARGS)
            try:
                started = time.perf_counter()
                pipeline = make_pipeline(module.SOURCE, destination=destination, pipelines_dir=root)
                extra = module.ours_kwargs(config) if hasattr(module, "ours_kwargs") else {}
                http = {"requests_per_minute": 0, "concurrency": 4, **extra.pop("http", {})}
                result = run_source(module.SOURCE, pipeline=pipeline, **config, http=http, **extra)
                if not result.ok:
                    raise SystemExit(f"{module.SOURCE}: {result.error}")
                print(f"loaded {module.SOURCE} {module.SIM_KWARGS} in {time.perf_counter() - started:.1f}s")
            finally:
                proc.kill()
                proc.wait()
        refreshes = [refresh_meetings_model(destination).seconds for _ in range(3)]
        print(f"\nrefresh (create the 6 views): median {statistics.median(refreshes) * 1000:.0f} ms "
              f"of {', '.join(f'{s * 1000:.0f}' for s in refreshes)} ms")
        readme = (Path(ROOT) / "README.md").read_text()
        queries = re.findall(r"```sql\n(-- (.*?)\n.*?)```", readme, flags=re.S)
        with duckdb.connect(path, read_only=True) as con:
            for view in ("meetings", "participants", "transcript_segments", "summaries",
                         "action_items", "topics"):
                started = time.perf_counter()
                rows = con.execute(f"SELECT * FROM meetings.{view}").fetchall()  # every column computed
                print(f"  read meetings.{view}: {len(rows):>7} rows from {len({r[0] for r in rows})} sources "
                      f"in {(time.perf_counter() - started) * 1000:.0f} ms")
            for sql, title in queries[:3]:
                started = time.perf_counter()
                rows = con.execute(sql).fetchall()
                print(f"  query '{title}': {len(rows)} rows in {(time.perf_counter() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
