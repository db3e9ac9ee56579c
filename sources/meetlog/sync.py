"""Incremental sync of one newest-first list (transcripts or reports) and its detail calls.

The lists take no date filter, so a run reads pages from the newest until it reaches the
boundary (the newest record an earlier run already saw), then stops. Every listed record
is compared with the version loaded before (a hash of its list fields):

- `completed` and new, changed or owed: the detail call loads it whole (text, content);
- anything else new or changed (`processing`, `failed`): the list item is the row;
- unchanged: nothing, not even a request.

Records still processing, and completed ones whose detail could not be fetched yet, are
kept in `pending` and finished on a later run: processing ones near the top are checked on
the pages read anyway (a few pages more are read when that is cheaper than detail calls),
the rest with one detail call each. A sweep (every `sweep_interval_hours`) reads the whole
list, which catches renames and status changes; records it no longer lists are confirmed
with a detail call, and a 404 marks them deleted.

State (a dict per list):
    known:     {id: "hash" or "hash|parent_id"} the version of every row loaded
    pending:   {id: [created_at or None, "processing" | "owed"]}
    boundary:  {"at": created_at, "ids": [...]}; last_sweep_at

State changes are applied only after the rows they describe were yielded, so a run that
stops early never remembers a row it did not hand over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt

from .._common.concurrency import map_ordered
from .._common.errors import AuthError, MeetingEltError, NotFoundError, RateLimitError, ScopeError
from .._common.http import ApiClient
from .._common.paginators import PageNumberPaginator
from .._common.records import excerpt, read_instant
from .._common.report import RunReport
from .._common.state import mark_swept, record_deletions, revive, sweep_due
from .._common.timeutil import parse_instant
from .helpers import created_at_problem, read_status, tidy, version
from .settings import COMPLETED, DETAIL_BATCH, PROCESSING_STATUSES

PROCESSING, OWED = "processing", "owed"


@dataclass
class Fetch:
    """A detail call to make: `why` is listed, pending (not on the pages read) or confirm."""

    id: str
    item: dict | None
    why: str


class ListSync:
    """One run over a newest-first list; `run()` yields pages of rows for `table`."""

    def __init__(self, client: ApiClient, report: RunReport, *, table: str, path: str,
                 detail_fields: frozenset[str], state: dict, source_state: dict, now: datetime,
                 start: datetime | None, sweep_interval_hours: float, page_size: int,
                 parent_key: str | None = None) -> None:
        self.client, self.report, self.table, self.path = client, report, table, path
        self.detail_fields, self.parent_key = detail_fields, parent_key
        self.state, self.source_state, self.now, self.start = state, source_state, now, start
        self.page_size = page_size
        self.known: dict[str, str] = state.setdefault("known", {})
        self.pending: dict[str, list] = state.setdefault("pending", {})
        self.sweep = sweep_due(state, sweep_interval_hours, now)
        self.seen: set[str] = set()
        self.handled: set[str] = set()
        self.created: dict[str, datetime | None] = {}
        self.rows: list[dict] = []
        self.ops: list[Callable[[], None]] = []
        self.stopped: str | None = None
        self.walk_complete = False
        self.fetched = 0
        self.pages = 0
        self.new_parents: set[str] = set()  # parents of records loaded or deleted this run

    # ---------------------------------------------------------------- helpers
    def _hash(self, record_id: str) -> str | None:
        value = self.known.get(record_id)
        return value.split("|", 1)[0] if value else None

    def _parent(self, record_id: str) -> str | None:
        value = self.known.get(record_id) or ""
        return value.split("|", 1)[1] if "|" in value else None

    def owe(self, ids: set[str]) -> None:
        """Marks loaded, settled records as owing a fresh detail (e.g. a report was added)."""
        for record_id in ids:
            if record_id in self.known and record_id not in self.pending:
                self.pending[record_id] = [None, OWED]

    def _boundary(self) -> tuple[datetime | None, set[str]]:
        boundary = self.state.get("boundary") or {}
        return parse_instant(boundary.get("at")), set(boundary.get("ids") or [])

    def _is_old(self, record_id: str, at_: datetime | None, ids: set[str]) -> bool:
        created = self.created.get(record_id)
        if created is None:
            return False
        if self.start is not None and created < self.start:
            return True
        return at_ is not None and (created < at_ or (created == at_ and record_id in ids))

    def _processing_below(self, floor: datetime) -> int:
        """Pending processing records not listed yet, older than the last item read."""
        count = 0
        for record_id, (created, reason) in self.pending.items():
            if reason == PROCESSING and record_id not in self.seen and created \
                    and parse_instant(created) < floor:
                count += 1
        return count

    def _valid(self, items: list) -> list[dict]:
        good = []
        for item in items:
            if not isinstance(item, dict) or item.get("id") in (None, ""):
                self.report.bad_record(self.table, excerpt(item), "listed without an id: not loaded", loaded=False)
                continue
            item["id"] = record_id = str(item["id"])
            # unreadable: this record neither stops the walk nor moves the boundary (and its
            # row names it, see `tidy`); the records around it decide where the run stops
            self.created[record_id] = read_instant(item.get("created_at"))
            if self.created[record_id] is None:
                self.report.bad_record(self.table, record_id, created_at_problem(item) or "created_at",
                                       loaded=True)
            good.append(item)
        return good

    # ---------------------------------------------------------------- listing
    def _walk(self) -> Iterator[list[dict]]:
        """Pages from the newest, until the boundary (and nearby pending records) are passed."""
        at_, ids = self._boundary()
        reached, extra = False, 0
        paginator = PageNumberPaginator(page_size=self.page_size, size_param="page_size",
                                        total_pages_path="meta.total_pages")
        try:
            for page in self.client.paginate(self.path, paginator=paginator, items_path="items"):
                self.pages += 1
                items = self._valid(page.items)
                yield items
                if self.start is not None and any(
                        (d := self.created.get(i["id"])) is not None and d < self.start for i in items):
                    break  # everything further down is older than start_date
                if self.sweep:
                    continue
                if reached:
                    extra += 1
                elif any(self._is_old(i["id"], at_, ids) for i in items):
                    reached = True
                if reached:
                    dates = [d for i in items if (d := self.created.get(i["id"])) is not None]
                    if not dates or self._processing_below(min(dates)) <= extra:
                        break
            self.walk_complete = True
        except RateLimitError as exc:  # a long wait or the run's budget: stop cleanly
            self._stop(exc)

    def _classify(self, item: dict) -> Fetch | None:
        record_id = item["id"]
        self.seen.add(record_id)
        if record_id in self.handled:  # listed twice: the list shifted while we paged
            return None
        self.handled.add(record_id)
        created = self.created.get(record_id)
        if self.start is not None and created is not None and created < self.start:
            return None
        digest = version(item, self.detail_fields)
        unchanged = self._hash(record_id) == digest
        if item.get("status") == COMPLETED:
            if unchanged and record_id not in self.pending:
                return None
            if self.stopped:
                self._stage_owed(record_id, created)
                return None
            return Fetch(record_id, item, "listed")
        if not unchanged:
            self._stage_row(item, digest)
        return None

    def _to_fetch(self) -> Iterator[Fetch]:
        for items in self._walk():
            for item in items:
                fetch = self._classify(item)
                if fetch is not None:
                    yield fetch
        if self.walk_complete and not self.seen and self.known:
            # an empty list while rows are known: a wrong account is likelier than everything
            # deleted at once, so its 404s are not trusted either
            self.report.warn(f"{self.table}: the API listed nothing while {len(self.known)} are "
                             "known: refusing to mark any as deleted (check the token's account)")
            return
        for record_id in list(self.pending):
            if record_id not in self.seen and record_id not in self.handled and not self.stopped:
                self.handled.add(record_id)
                yield Fetch(record_id, None, "pending")
        if self.sweep and self.walk_complete:
            missing = [i for i in list(self.known) if i not in self.seen and i not in self.handled]
            for record_id in missing:  # gone from the list: a 404 confirms the deletion
                self.handled.add(record_id)
                yield Fetch(record_id, None, "confirm")

    # ---------------------------------------------------------------- details
    def _fetch(self, fetch: Fetch) -> Any:
        return self.client.get(f"{self.path}/{fetch.id}").body

    def _settle(self, fetch: Fetch, result: Any) -> None:
        if isinstance(result, NotFoundError):
            self._stage_gone(fetch.id)
        elif isinstance(result, AuthError | ScopeError):
            raise result
        elif isinstance(result, RateLimitError):
            self._stop(result)
            self._stage_owed(fetch.id, self.created.get(fetch.id), fetch)
        elif isinstance(result, MeetingEltError):
            self.report.warn(f"{self.table} {fetch.id}: details not loaded, retried next run: {result}")
            self._stage_owed(fetch.id, self.created.get(fetch.id), fetch)
        elif isinstance(result, BaseException):
            raise result
        elif not isinstance(result, dict) or str(result.get("id")) != fetch.id:
            self.report.warn(f"{self.table} {fetch.id}: malformed detail answer, retried next run: "
                             f"{str(result)[:200]}")
            self._stage_owed(fetch.id, self.created.get(fetch.id), fetch)
        else:
            self.fetched += 1
            row = {**(fetch.item or {}), **result, "id": fetch.id}
            digest = version(row, self.detail_fields)
            if row.get("status") != COMPLETED and self._hash(fetch.id) == digest:
                return  # still processing, as loaded before: nothing new to load
            self._stage_row(row, digest)

    def _stop(self, exc: RateLimitError) -> None:
        if not self.stopped:
            self.stopped = f"stopped after {self.fetched} detail calls: {exc.message}"
            self.report.warn(f"{self.table}: {self.stopped}")

    # ---------------------------------------------------------------- staged state
    def _stage_row(self, row: dict, digest: str) -> None:
        record_id, status = row["id"], read_status(row.get("status"))
        parent = str(row.get(self.parent_key)) if self.parent_key and row.get(self.parent_key) else None
        created = read_instant(row.get("created_at")) if status in PROCESSING_STATUSES else None
        was_known = record_id in self.known
        self.rows.append(tidy(self.table, row, self.report))

        def apply() -> None:
            self.known[record_id] = f"{digest}|{parent}" if parent else digest
            if status in PROCESSING_STATUSES:
                self.pending[record_id] = [created.isoformat() if created else None, PROCESSING]
            else:
                self.pending.pop(record_id, None)
            revive(self.source_state, self.table, [record_id])
            if parent and not was_known:
                self.new_parents.add(parent)

        self.ops.append(apply)

    def _stage_owed(self, record_id: str, created: datetime | None, fetch: Fetch | None = None) -> None:
        if fetch is not None and fetch.why == "confirm":
            return  # stays known; the next sweep asks again

        def apply() -> None:
            old = self.pending.get(record_id)
            self.pending[record_id] = [created.isoformat() if created else (old[0] if old else None), OWED]

        self.ops.append(apply)

    def _stage_gone(self, record_id: str) -> None:
        def apply() -> None:
            parent = self._parent(record_id)
            self.known.pop(record_id, None)
            self.pending.pop(record_id, None)
            record_deletions(self.source_state, self.table, [record_id], self.now)
            if parent:
                self.new_parents.add(parent)

        self.ops.append(apply)

    def _flush(self) -> Iterator[Any]:
        rows, ops = self.rows, self.ops
        self.rows, self.ops = [], []
        if rows:
            yield dlt.mark.with_table_name(rows, self.table)
        for apply in ops:
            apply()

    # ---------------------------------------------------------------- the run
    def run(self) -> Iterator[Any]:
        """Yields rows for `self.table`; updates the state as they are handed over."""
        results = map_ordered(self._fetch, self._to_fetch(), self.client.settings.concurrency)
        for fetch, result in results:
            self._settle(fetch, result)
            if len(self.rows) + len(self.ops) >= DETAIL_BATCH:
                yield from self._flush()
        yield from self._flush()
        if self.walk_complete:
            self._advance_boundary()
            if self.sweep:
                mark_swept(self.state, self.now)
        notes = []
        if not self.walk_complete:
            notes.append("the list was not read to its end; the next run reads on")
        if self.pending:
            why = self.stopped or "still processing at the vendor, or their detail call failed"
            notes.append(f"{len(self.pending)} owe details ({why})")
        if notes:
            self.report.wait(self.table, "; ".join(notes))

    def _advance_boundary(self) -> None:
        at_, ids = self._boundary()
        for record_id in self.seen:
            created = self.created.get(record_id)
            if created is None:
                continue
            if at_ is None or created > at_:
                at_, ids = created, {record_id}
            elif created == at_:
                ids.add(record_id)
        if at_ is not None:
            # full precision: the boundary is compared with the API's own instants
            self.state["boundary"] = {"at": at_.isoformat(), "ids": sorted(ids)}
