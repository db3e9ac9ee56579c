"""Marking deleted records inside the run: stored rows read back and handed to dlt again.

dlt's merge replaces whole rows (and their nested child rows), so a mark cannot be loaded
as a partial row. Instead, the rows to mark are read back from the destination — they were
loaded by earlier runs, and dlt loads any pending package before it extracts — with their
nested child rows, and yielded again with `deleted_at` set. The merge then writes them
back whole: every other column and every child row as they were, plus the mark.

This works wherever dlt can read the data back: SQL destinations through the pipeline's
SQL client, the filesystem destination's Delta tables through `deltalake`. Because the
marks travel in the same load package as the rest of the run's data and state, a mark is
loaded exactly once, whoever runs the source (our CLI, a plain `pipeline.run`, Airflow,
Dagster), with no step after the load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from dlt.common import logger

from .redaction import redact
from .timeutil import parse_instant

DLT_COLUMNS_PREFIX = "_dlt_"
CHUNK = 500  # ids per query


class StoredRows:
    """Reads rows of earlier loads back from the pipeline's destination."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.schema = pipeline.default_schema
        self._delta: dict[str, Any] | None = None

    # ---------------------------------------------------------------- backends
    def _is_delta(self, table: str) -> bool:
        root = self._root_of(table)
        return self.pipeline.destination.destination_name == "filesystem" and \
            self.schema.tables.get(root, {}).get("table_format") == "delta"

    def _root_of(self, table: str) -> str:
        parent = self.schema.tables.get(table, {}).get("parent")
        return self._root_of(parent) if parent else table

    def _where_in(self, table: str, column: str, values: list[Any]) -> list[dict[str, Any]]:
        if not values:
            return []
        if self._is_delta(table):
            return self._delta_where_in(table, column, values)
        out: list[dict[str, Any]] = []
        with self.pipeline.sql_client() as client:
            qualified = client.make_qualified_table_name(table)
            escaped = client.escape_column_name(column)
            for start in range(0, len(values), CHUNK):
                chunk = values[start:start + CHUNK]
                marks = ", ".join(["%s"] * len(chunk))
                sql = f"SELECT * FROM {qualified} WHERE {escaped} IN ({marks})"
                with client.execute_query(sql, *chunk) as cursor:
                    names = [d[0] for d in cursor.description]
                    out.extend(dict(zip(names, row, strict=True)) for row in cursor.fetchall())
        return out

    def _delta_where_in(self, table: str, column: str, values: list[Any]) -> list[dict[str, Any]]:
        import pyarrow.compute as pc
        from dlt.common.libs.deltalake import get_delta_tables

        if self._delta is None:
            self._delta = get_delta_tables(self.pipeline)
        delta = self._delta.get(table)
        if delta is None:
            return []
        dataset = delta.to_pyarrow_dataset()
        # a table merged into holds `string_view` files under a `string` schema: the cast keeps
        # the filter off the files' statistics, which cannot compare the two
        key = pc.field(column).cast(dataset.schema.field(column).type)
        return dataset.to_table(filter=key.isin(values)).to_pylist()

    # ---------------------------------------------------------------- rows
    def rows(self, table: str, key: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        """The rows of `table` whose `key` is in `ids`, each with its nested child rows
        put back as lists (as the source once yielded them), without dlt's own columns."""
        if table not in self.schema.tables or not self.schema.get_table_columns(table):
            return []
        column = self.schema.naming.normalize_identifier(key)
        key_type = self.schema.get_table_columns(table).get(column, {}).get("data_type")
        values: list[Any] = [int(i) if key_type == "bigint" and str(i).lstrip("-").isdigit() else i
                             for i in ids]
        roots = self._where_in(table, column, values)
        self._attach_children(table, roots)
        return [self._clean(table, row) for row in roots]

    def _children(self, table: str) -> list[str]:
        return [name for name, t in self.schema.tables.items() if t.get("parent") == table
                and self.schema.get_table_columns(name)]

    def _attach_children(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        for child in self._children(table):
            field = child[len(table) + len(self.schema.naming.PATH_SEPARATOR):]
            kids = self._where_in(child, "_dlt_parent_id", [r["_dlt_id"] for r in rows])
            self._attach_children(child, kids)
            kids.sort(key=lambda k: k.get("_dlt_list_idx") or 0)
            by_parent: dict[str, list] = {}
            for kid in kids:
                by_parent.setdefault(kid["_dlt_parent_id"], []).append(kid)
            for row in rows:
                row[field] = [self._child_value(child, k) for k in by_parent.get(row["_dlt_id"], [])]

    def _child_value(self, child: str, row: dict[str, Any]) -> Any:
        clean = self._clean(child, row)
        return clean["value"] if set(clean) == {"value"} else clean

    def _clean(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        columns = self.schema.get_table_columns(table)
        out = {}
        for name, value in row.items():
            if name.startswith(DLT_COLUMNS_PREFIX):
                continue
            if isinstance(value, str) and columns.get(name, {}).get("data_type") == "json":
                with contextlib.suppress(orjson.JSONDecodeError):
                    value = orjson.loads(value)
            out[name] = value
        return out


def marked_rows(pipeline: Any, table: str, key: str, marks: dict[str, str]) -> list[dict] | None:
    """The stored rows of `marks`' ids with `deleted_at` set; None when the destination
    could not be read (the marks are then tried again on a later run).

    Rows already marked keep their first `deleted_at`. Ids with no stored row (never
    loaded) have nothing to mark.
    """
    if not marks:
        return []
    try:
        stored = StoredRows(pipeline).rows(table, key, list(marks))
    except Exception as exc:  # noqa: BLE001 - e.g. the destination is unreachable
        logger.warning(f"{table}: could not read rows back to mark deletions ({type(exc).__name__}: "
                       f"{redact(str(exc))}); they are marked on a later run")
        return None
    column = pipeline.default_schema.naming.normalize_identifier(key)
    out = []
    for row in stored:
        if row.get("deleted_at") is None:
            row["deleted_at"] = _instant(marks.get(str(row.get(column))))
            out.append(row)
    return out


def _instant(value: str | None) -> datetime | None:
    return parse_instant(value) if value else None
