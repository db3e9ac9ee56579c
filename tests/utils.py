"""Helpers shared by the tests (after dlt verified-sources' tests/utils.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt

from pipelines.runner import RunResult, make_destination, run_source


def make_pipeline(tmp_path: Path, name: str, dataset: str | None = None) -> dlt.Pipeline:
    """A pipeline with its own DuckDB file and state folder under `tmp_path`."""
    return dlt.pipeline(
        pipeline_name=f"test_{name}",
        destination=make_destination("duckdb", str(tmp_path / f"warehouse_{name}.duckdb")),
        dataset_name=dataset or name,
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def run(pipeline: dlt.Pipeline, source_name: str, **source_kwargs: Any) -> RunResult:
    """Runs a registered source the way the CLI does."""
    return run_source(source_name, pipeline=pipeline, **source_kwargs)


def run_strict(pipeline: dlt.Pipeline, source: Any) -> Any:
    """Runs a source object and raises on any failure (deletions are marked inside the run)."""
    info = pipeline.run(source)
    assert_load_info(info)
    return info


def assert_load_info(info: Any, expected_load_packages: int | None = None) -> None:
    """Asserts that no job failed, and optionally how many packages were loaded."""
    info.raise_on_failed_jobs()
    if expected_load_packages is not None:
        assert len(info.loads_ids) == expected_load_packages


def table_names(pipeline: dlt.Pipeline) -> set[str]:
    return {t for t in pipeline.default_schema.data_table_names() if not t.startswith("_dlt")}


def rows(pipeline: dlt.Pipeline, table: str, columns: str = "*", where: str = "",
         order_by: str | None = None) -> list[dict[str, Any]]:
    """All rows of `table` as dicts (without dlt's bookkeeping columns when `*`)."""
    with pipeline.sql_client() as client:
        qualified = client.make_qualified_table_name(table)
        sql = f"SELECT {columns} FROM {qualified}"
        if where:
            sql += f" WHERE {where}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        with client.execute_query(sql) as cursor:
            names = [d[0] for d in cursor.description]
            out = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if columns == "*":
        out = [{k: v for k, v in r.items() if not k.startswith("_dlt")} for r in out]
    return out


def load_table_counts(pipeline: dlt.Pipeline, *tables: str) -> dict[str, int]:
    with pipeline.sql_client() as client:
        counts = {}
        for table in tables:
            qualified = client.make_qualified_table_name(table)
            with client.execute_query(f"SELECT count(*) FROM {qualified}") as cursor:
                counts[table] = cursor.fetchone()[0]
    return counts


def grep_tree(root: Path, needle: str) -> list[str]:
    """Files under `root` whose bytes contain `needle` (for secret-leak tests)."""
    hits = []
    encoded = needle.encode()
    for path in Path(root).rglob("*"):
        if path.is_file() and encoded in path.read_bytes():
            hits.append(str(path))
    return hits


def bad_record_outcome(pipeline: dlt.Pipeline, report: Any, table: str, record_id: Any,
                       key: str = "id") -> set[str]:
    """How a malformed record fared: {"loaded"} if its row is in `table`, {"named"} if the
    run's report names it, both, or the empty set when it was lost silently."""
    outcome = set()
    if table in table_names(pipeline):
        found = rows(pipeline, table, columns="count(*) AS n", where=f"CAST({key} AS TEXT) = '{record_id}'")
        if found[0]["n"]:
            outcome.add("loaded")
    if any(str(record_id) in b.record_id and b.table == table for b in report.bad_records):
        outcome.add("named")
    return outcome
