"""What every per-account reader shares: options, per-account state, change detection, deletions.

Each table's reader keeps, per account, `{id: hash}` of the rows it loaded (in dlt resource
state, committed with the data). A row is yielded only when its hash moved, so re-reading a
window or sweeping the whole list loads nothing that did not change. A sweep — a complete
listing, every `sweep_interval_hours` — also tells which loaded records the vendor deleted:
they get tombstones (`deleted_at`), and their hash is forgotten so that a record that comes
back is loaded again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import dlt
import orjson
import pyarrow as pa

from .._common.report import RunReport
from .._common.state import mark_swept, record_deletions, revive, sweep_due
from .accounts import Account
from .helpers import arrow_page
from .settings import BATCH_ROWS, DIRTY_DAYS


def digest_of(item: dict) -> str:
    """A 40-bit content hash: short, because state keeps one per loaded record."""
    return hashlib.blake2b(orjson.dumps(item, option=orjson.OPT_SORT_KEYS), digest_size=5).hexdigest()


@dataclass(frozen=True)
class Options:
    """The source's tuning, as the readers need it."""

    start_date: date | None
    sweep_interval_hours: float
    lookback_days: int
    summary_backfill_days: int
    page_size: int


class AccountSync:
    """Base of the per-account, per-table readers."""

    table = ""

    def __init__(self, account: Account, resource_state: dict, report: RunReport, options: Options,
                 now: datetime) -> None:
        self.account, self.client, self.report, self.options, self.now = (
            account, account.client, report, options, now)
        self.state: dict[str, Any] = resource_state.setdefault("accounts", {}).setdefault(account.id, {})
        self.known: dict[str, Any] = self.state.setdefault("known", {})
        self.first_run = not self.state.get("done_first_run")
        self.sweep = self.first_run or sweep_due(self.state, options.sweep_interval_hours, now)
        self._batch: dict[str, tuple[dict, str]] = {}
        self.flushed = 0

    def where(self) -> str:
        return f"{self.table}: account '{self.account.id}'"

    def collect(self, items: Iterable[dict], *, key: str = "id") -> Iterator[pa.Table]:
        """Queues the items whose content changed since they were loaded; yields a page when
        `BATCH_ROWS` are queued (dlt's per-item cost makes a few big pages much cheaper)."""
        for item in items:
            record_id = str(item[key])
            digest = digest_of(item)
            old = self.known.get(record_id)
            if (old[0] if isinstance(old, list) else old) != digest:
                self._batch[record_id] = (item, digest)
            else:
                self._batch.pop(record_id, None)  # seen twice while paging, back as it was
        if len(self._batch) >= BATCH_ROWS:
            yield from self.flush(key=key)

    def flush(self, *, key: str = "id", strip: tuple[str, ...] = ()) -> Iterator[pa.Table]:
        """Yields the queued items as one page and only then records their hashes, so a run
        stopped before a page was handed over loses nothing: those rows load next run."""
        if not self._batch:
            return
        batch, self._batch = self._batch, {}
        self.flushed += len(batch)
        if not self.first_run:
            self.mark_days(self.affected_days([item for item, _ in batch.values()]))
        items = []
        for record_id, (item, digest) in batch.items():
            self.known[record_id] = self.version(item, digest)
            items.append({k: v for k, v in item.items() if k not in strip} if strip else item)
        yield self.page(items, key=key)

    def affected_days(self, items: list[dict]) -> set[str]:
        """The days whose daily summary these changed items move (none, unless overridden)."""
        return set()

    def mark_days(self, days: Iterable[str | None]) -> None:
        """Asks the summary reader to refresh these days of this account, if they are older than
        the window it refreshes anyway (source state: the readers may run in any order)."""
        edge = (self.now.date() - timedelta(days=self.options.lookback_days)).isoformat()
        days = {d for d in days if d and d < edge}
        if days:
            store = dlt.current.source_state().setdefault(DIRTY_DAYS, {}).setdefault(self.account.id, [])
            store[:] = sorted(set(store) | days)

    def version(self, item: dict, digest: str) -> Any:
        """What `known` keeps for an item (subclasses add to the hash)."""
        return digest

    def page(self, items: list[dict], *, key: str = "id") -> pa.Table:
        return arrow_page(self.table, items, self.report, account_id=self.account.id, key=key)

    def mark_deleted(self, seen: set[str], *, complete: bool, stable: bool,
                     candidates: set[str] | None = None) -> None:
        """After a sweep: tombstones the loaded records the complete listing no longer shows."""
        source_state = dlt.current.source_state()
        revive(source_state, self.table, seen)
        if not complete:
            return
        candidates = set(self.known) if candidates is None else candidates
        if not stable:
            self.report.warn(f"{self.where()}: the list changed while it was swept; deletions are "
                             "checked again on the next sweep")
            return
        if not seen and candidates:
            self.report.warn(f"{self.where()}: the API listed nothing while {len(candidates)} are loaded: "
                             "refusing to mark any as deleted (check the account id)")
            return
        gone = candidates - seen
        self.mark_days(v[1] for v in (self.known.get(r) for r in gone) if isinstance(v, list))
        for record_id in gone:
            self.known.pop(record_id, None)
        if gone:
            record_deletions(source_state, self.table, gone, self.now)
            self.report.warn(f"{self.where()}: {len(gone)} records were deleted at the vendor; "
                             "marked with deleted_at")

    def finish(self) -> None:
        """Marks the first run and the sweep as done (call only when the listing completed)."""
        self.state["done_first_run"] = True
        if self.sweep:
            mark_swept(self.state, self.now)
