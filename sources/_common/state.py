"""Bookkeeping kept in dlt state: sweep timing, pending items, deletion tombstones.

Tombstones: a record the vendor deleted is marked by setting `deleted_at` on its row, never
dropped. dlt's merge replaces whole rows, so a mark cannot be loaded as a partial row;
instead sources record `{table: {id: deleted_at}}` in source state (committed with the
extracted data), and `apply_deletions(pipeline)` sets the column after the load. It is
idempotent and runs after every load, so a crash between load and marking heals next run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson
from dlt.common import logger

from .timeutil import iso, parse_instant

TOMBSTONES_KEY = "tombstones"
DELETED_AT_COLUMN = {"deleted_at": {"data_type": "timestamp", "nullable": True}}


def deleted_at_column() -> dict[str, dict]:
    """A fresh `deleted_at` column hint (dlt writes into hint dicts: never share one)."""
    return {"deleted_at": {"data_type": "timestamp", "nullable": True}}
TOMBSTONE_RETENTION_DAYS = 90


def sweep_due(state: dict, interval_hours: float, now: datetime) -> bool:
    """True when `sweep_interval_hours` have passed since the last full sweep (0: always)."""
    last = parse_instant(state.get("last_sweep_at"))
    return last is None or interval_hours <= 0 or now - last >= timedelta(hours=interval_hours)


def mark_swept(state: dict, now: datetime) -> None:
    state["last_sweep_at"] = iso(now)


def record_deletions(source_state: dict, table: str, ids: Iterable[Any], now: datetime) -> int:
    """Adds tombstones for `ids` in `table`; returns how many are new."""
    marks = source_state.setdefault(TOMBSTONES_KEY, {}).setdefault(table, {})
    new = 0
    for record_id in ids:
        if str(record_id) not in marks:
            marks[str(record_id)] = iso(now)
            new += 1
    return new


def revive(source_state: dict, table: str, ids: Iterable[Any]) -> None:
    """Drops tombstones of records that came back (the merge writes `deleted_at` null)."""
    marks = source_state.get(TOMBSTONES_KEY, {}).get(table)
    if marks:
        for record_id in ids:
            marks.pop(str(record_id), None)


def prune_tombstones(source_state: dict, now: datetime) -> None:
    """Forgets marks older than the retention; their rows keep `deleted_at` in the warehouse."""
    cutoff = now - timedelta(days=TOMBSTONE_RETENTION_DAYS)
    for marks in source_state.get(TOMBSTONES_KEY, {}).values():
        for record_id in [k for k, v in marks.items() if parse_instant(v) < cutoff]:
            del marks[record_id]


def apply_deletions(pipeline: Any, source_name: str | None = None) -> int:
    """Sets `deleted_at` on rows whose records the vendor deleted; returns rows marked.

    Call after `pipeline.run(...)` when you run a source with your own pipeline; the
    `meeting-elt` CLI does it for you. Destinations without SQL (files) are skipped.
    """
    sources = pipeline.state.get("sources", {})
    names = [source_name] if source_name else list(sources)
    marked = 0
    for name in names:
        tombstones = sources.get(name, {}).get(TOMBSTONES_KEY, {})
        if not any(tombstones.values()):
            continue
        try:
            client_cm = pipeline.sql_client()
        except Exception as exc:  # filesystem and other non-SQL destinations
            logger.warning(f"{name}: cannot mark deleted records on this destination: {exc}")
            return 0
        with client_cm as client:
            for table, marks in tombstones.items():
                if not marks or table not in pipeline.default_schema.tables:
                    continue
                qualified = client.make_qualified_table_name(table)
                for record_id, deleted_at in marks.items():
                    client.execute_sql(
                        f"UPDATE {qualified} SET deleted_at = %s WHERE id = %s AND deleted_at IS NULL",
                        deleted_at, record_id,
                    )
                marked += len(marks)
    return marked


def row_hash(row: Any) -> str:
    """A short content hash of a row, to tell changed rows from re-sent ones."""
    return hashlib.blake2b(orjson.dumps(row, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


def changed_rows(resource_state: dict, items: list[dict], *, key: str = "id",
                 ignore: Iterable[str] = ()) -> list[dict]:
    """Rows of a full listing whose content changed since the last run (by hash).

    `ignore` names fields that change on every call (signed URLs, `_meta`) and must not
    make a row look changed. Hashes of ids no longer listed are forgotten.
    """
    ignore = set(ignore)
    old: dict[str, str] = resource_state.get("hashes", {})
    new: dict[str, str] = {}
    changed = []
    for item in items:
        digest = row_hash({k: v for k, v in item.items() if k not in ignore})
        record_id = str(item.get(key))
        new[record_id] = digest
        if old.get(record_id) != digest:
            changed.append(item)
    resource_state["hashes"] = new
    return changed


def reconcile_snapshot(resource_state: dict, source_state: dict, table: str, items: list[dict],
                       now: datetime, report: Any, *, key: str = "id") -> list[dict]:
    """For endpoints that list everything every time: returns the rows that changed, and
    tombstones ids that left the list.

    An empty list while ids are known marks nothing and says why (a wrong account, or a
    vendor hiccup, is likelier than everything being deleted at once).
    """
    current = {str(i.get(key)) for i in items}
    previous = set(resource_state.get("hashes", {}))
    if not current and previous:
        report.warn(f"{table}: the API listed nothing while {len(previous)} are known: "
                    "refusing to mark any as deleted")
        return []
    gone = previous - current
    if gone:
        record_deletions(source_state, table, gone, now)
        report.warn(f"{table}: {len(gone)} no longer listed by the vendor; marked with deleted_at")
    revive(source_state, table, current)
    return changed_rows(resource_state, items, key=key)
