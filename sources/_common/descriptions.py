"""Descriptions of tables and columns, carried as dlt hints (`description`).

A source describes its tables in `sources/<name>/descriptions.py`:

    TABLES = {"conversations": "One row per conversation …"}
    COLUMNS = {"conversations": {"id": "The vendor's id …", "status": "…"}}

`describe(source, TABLES, COLUMNS)` puts them on the resources as `description` hints, so
they reach the dlt schema (and the destination's `_dlt_version`); `meeting-elt docs` prints
them in `docs/tables.md`. Only tables a resource owns take hints (its own table, or a table
variant it declares): giving a resource hints for a table it only names at run time would
copy its own key and write disposition onto that table. The docs read the dicts for the
rest (nested tables like `conversations__participants`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def describe(source: Any, tables: Mapping[str, str], columns: Mapping[str, Mapping[str, str]]) -> Any:
    """Adds the descriptions to the resources of `source` (a `DltSource`) that own the tables;
    returns the source."""
    for resource in source.resources.values():
        owned = dict.fromkeys(getattr(resource, "_hints_variants", {}), True)
        if isinstance(resource.table_name, str) and not resource.has_dynamic_table_name:
            owned[resource.table_name] = False
        for table, is_variant in owned.items():
            hints: dict[str, Any] = {}
            if table in columns:
                hints["columns"] = {name: {"name": name, "description": text}
                                    for name, text in columns[table].items()}
            if not hints and table not in tables:
                continue
            if is_variant:
                resource.apply_hints(table_name=table, create_table_variant=True, **hints)
            elif hints:
                resource.apply_hints(**hints)
            if table in tables:
                _table_description(resource, table if is_variant else None, tables[table])
    return source


def _table_description(resource: Any, variant: str | None, text: str) -> None:
    hints = resource._hints_variants.get(variant) if variant else resource._hints
    if hints is not None:
        hints["description"] = text


def column_description(schema_column: Mapping[str, Any], fallback: Mapping[str, str], name: str) -> str:
    """The column's `description` hint, else the source's dict entry, else ""."""
    return str(schema_column.get("description") or fallback.get(name) or "")
