"""The three destinations every behaviour is tested on: DuckDB, a real Postgres, and the
filesystem destination on a local folder (Delta tables: plain files cannot be merged).

Use the `warehouse` fixture (conftest.py): it is parametrized over the three kinds and
gives a `Warehouse` with a fresh pipeline and a way to read tables back on any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt

from pipelines.runner import make_destination

KINDS = ("duckdb", "postgres", "filesystem")


@dataclass
class Warehouse:
    kind: str
    destination: Any
    root: Path

    def pipeline(self, name: str, dataset: str | None = None) -> dlt.Pipeline:
        """A pipeline with its own state folder, on this destination."""
        return dlt.pipeline(pipeline_name=f"test_{name}_{self.kind}", destination=self.destination,
                            dataset_name=dataset or f"{name}_data",
                            pipelines_dir=str(self.root / "pipelines" / name))

    @property
    def run_kwargs(self) -> dict[str, Any]:
        """What `pipeline.run` needs on this destination (Delta tables on files)."""
        return {"table_format": "delta"} if self.kind == "filesystem" else {}

    def run(self, pipeline: dlt.Pipeline, source: Any) -> Any:
        info = pipeline.run(source, **self.run_kwargs)
        info.raise_on_failed_jobs()
        return info

    def rows(self, pipeline: dlt.Pipeline, table: str) -> list[dict[str, Any]]:
        """Every row of `table`, dlt's own load columns left out (`_dlt_id` kept for joins)."""
        if self.kind == "filesystem":
            from dlt.common.libs.deltalake import get_delta_tables

            data = get_delta_tables(pipeline, table)[table].to_pyarrow_table().to_pylist()
        else:
            with pipeline.sql_client() as client:
                sql = f"SELECT * FROM {client.make_qualified_table_name(table)}"
                with client.execute_query(sql) as cursor:
                    names = [d[0] for d in cursor.description]
                    data = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return [{k: v for k, v in r.items() if k not in ("_dlt_load_id",)} for r in data]


def make_warehouse(kind: str, tmp_path: Path, request: Any) -> Warehouse:
    if kind == "duckdb":
        destination = make_destination("duckdb", str(tmp_path / "warehouse.duckdb"))
    elif kind == "postgres":
        destination = request.getfixturevalue("postgres_destination")
    else:
        destination = dlt.destinations.filesystem((tmp_path / "lake").as_uri())
    return Warehouse(kind, destination, tmp_path)


def children(wh: Warehouse, pipeline: dlt.Pipeline, parent: str, child: str, key: str = "id",
             columns: tuple[str, ...] = ()) -> list[tuple]:
    """Child rows joined to their parent's key: (parent key, list index, *columns)."""
    parents = {r["_dlt_id"]: r[key] for r in wh.rows(pipeline, parent)}
    out = []
    for r in wh.rows(pipeline, child):
        out.append((str(parents.get(r["_dlt_parent_id"])), r["_dlt_list_idx"], *(r.get(c) for c in columns)))
    return sorted(out, key=lambda t: tuple(str(x) for x in t))


def without(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}


def assert_marked(before: dict[Any, dict], after: dict[Any, dict], gone: Iterable[Any]) -> None:
    """Rows by key, read before and after a run that should mark `gone` deleted: exactly
    those carry `deleted_at`, with every other column as it was (`_dlt_id` is dlt's own row
    id, new with each write); every other row is unchanged."""
    gone = set(gone)
    assert {key for key, row in after.items() if row["deleted_at"] is not None} == gone
    for key in gone:
        assert without(after[key], "deleted_at", "_dlt_id") == without(before[key], "deleted_at", "_dlt_id")
    for key in set(after) - gone:
        assert after[key] == before[key]
