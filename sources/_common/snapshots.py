"""Endpoints that answer their whole list at once (users, teams, topics, webhooks, …).

A snapshot entity runs on the engine like any list: each run reads the list, loads the
rows whose content changed (by hash), and — unless the list only shows a recent stretch —
marks the records it no longer shows as deleted (refusing when it shows nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from .engine import Engine, Entity, SnapshotListing, TableSpec, entity_resources
from .ledger import EntityLedger, row_hash
from .records import is_blank, read_instant, read_text
from .report import RunReport


def content_version(ignore: Iterable[str] = ()) -> Callable[[dict], str]:
    """A record's version as the hash of its content, without fields that change on every
    call (signed URLs, `_meta`)."""
    skip = set(ignore)
    return lambda item: row_hash({k: v for k, v in item.items() if k not in skip})


def id_of(field: str = "id") -> Callable[[Any], str | None]:
    def key(item: Any) -> str | None:
        if not isinstance(item, dict):
            return None
        value = read_text(item.get(field))
        return None if is_blank(value) else value

    return key


def snapshot_resources(*, name: str, fetch: Callable[[], list], client: Any, report: RunReport,
                       now: Callable[[], datetime], hints: dict[str, Any], key: str = "id",
                       deletions: bool = True, ignore: Iterable[str] = (),
                       group: Callable[[dict], str | None] | None = None,
                       covers: Callable[[str, dict], bool] | None = None,
                       day: Callable[[dict], str | None] | None = None,
                       keep_days: float | None = None,
                       row: Callable[[dict], dict | None] | None = None) -> list[Any]:
    """The dlt resources of a snapshot list loaded into table `name`.

    `keep_days`: for lists that show only a recent stretch (no deletions), records whose
    `day` is older than this are forgotten by the ledger, so it does not grow forever.
    """
    entity = Entity(name=name, table=name, key=id_of(key), version=content_version(ignore),
                    day=day or (lambda item: None), group=group or (lambda item: None),
                    row=row or (lambda item: item), key_column=key)

    def listing(book: EntityLedger) -> SnapshotListing:
        if keep_days is not None:
            _forget_older(book, now() - timedelta(days=keep_days))
        return SnapshotListing(fetch, deletions=deletions, covers=covers)

    engine = Engine(entity, listing, client=client, report=report, now=now)
    return entity_resources(engine, [TableSpec(name, hints=hints)], report)


def _forget_older(book: EntityLedger, cutoff: datetime) -> None:
    for record_id in list(book.ids()):
        day = read_instant((book.get(record_id) or {}).get("day"))
        if day is not None and day < cutoff:
            book.forget(record_id)
