"""Every source's tables after the change cycle, on DuckDB, Postgres and the filesystem
destination side by side.

    python -m bench.destination_counts            # runs tests/test_change_cycle.py, then prints
    python -m bench.destination_counts --from DIR # prints counts an earlier run wrote to DIR

The cycle is the test's (full load, a no-change rerun, one new, one changed and one deleted
record, a fresh worker restoring its state from the destination, one more new record). It
runs under pytest with `MEETING_ELT_COUNTS_DIR` set, so Postgres is the test's own
throwaway server (`tests/postgres.py`, required here: no silent skip). Each cell is the
table's live rows (`deleted_at` null where the table has that column) / all its rows; a row
whose cells differ between destinations is flagged. Exits non-zero when the tests fail or a
row differs in a way no source documents.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

KINDS = ("duckdb", "postgres", "filesystem")
ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/test_change_cycle.py"
# differences the sources document (and the test asserts): flagged, but not a failure
DOCUMENTED = {
    ("meetlog", "project_transcripts"): "documented: Delta's upsert takes no merge key, so on the filesystem "
                                        "a transcript that left a project keeps its row (sources/meetlog/README.md)",
}


def run_cycle(folder: Path) -> int:
    env = {**os.environ, "MEETING_ELT_COUNTS_DIR": str(folder), "MEETING_ELT_REQUIRE_POSTGRES": "1",
           "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST],
                          cwd=ROOT, env=env).returncode


def read_counts(folder: Path) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """{source: {table: {destination: {"live": n, "rows": n}}}}"""
    out: dict = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        for table, counts in data["tables"].items():
            out.setdefault(data["source"], {}).setdefault(table, {})[data["destination"]] = counts
    return out


def table(counts: dict) -> tuple[str, int]:
    """The Markdown table, and how many rows differ between destinations (beyond DOCUMENTED)."""
    lines = ["| source | table | " + " | ".join(KINDS) + " | |", "|---|---|" + "---:|" * len(KINDS) + "---|"]
    differ = 0
    for source in sorted(counts):
        for name in sorted(counts[source]):
            by_kind = counts[source][name]
            cells = [f"{by_kind[k]['live']} / {by_kind[k]['rows']}" if k in by_kind else "missing" for k in KINDS]
            same = len(set(cells)) == 1
            note = "" if same else DOCUMENTED.get((source, name), "**differs**")
            differ += not same and (source, name) not in DOCUMENTED
            lines.append(f"| {source} | {name} | " + " | ".join(cells) + f" | {note} |")
    return "\n".join(lines), differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="folder", type=Path,
                        help="print the counts already in this folder instead of running the cycle")
    args = parser.parse_args(argv)
    failed = 0
    if args.folder:
        folder = args.folder
    else:
        folder = Path(tempfile.mkdtemp(prefix="meeting-elt-counts-"))
        failed = run_cycle(folder)
    counts = read_counts(folder)
    if not counts:
        print(f"no counts in {folder}", file=sys.stderr)
        return 1
    text, differ = table(counts)
    print("\nTables after the change cycle: live rows / all rows (a deleted record's row stays, "
          "marked).\n")
    print(text)
    print(f"\n{differ} row(s) differ between destinations beyond the documented ones." if differ else
          "\nThe three destinations hold the same tables, with the same counts but where documented.")
    if failed:
        print(f"\n{TEST} failed (exit {failed}): the counts above may be incomplete.", file=sys.stderr)
    return 1 if failed or differ else 0


if __name__ == "__main__":
    sys.exit(main())
