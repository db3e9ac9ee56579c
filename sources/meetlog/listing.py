"""Which pages of meetlog's lists a run reads.

The transcripts and reports lists are newest first by `created_at` and take no date
filter. Between sweeps a run reads from the newest page down to the boundary (the newest
record an earlier run saw: its `created_at`, and the ids listed at that instant) and stops
at the first page that reaches it. Records the vendor is still processing (the ledger's
`waiting`) are finished later: the ones on the pages read are seen anyway, and a few pages
more are read while that costs fewer requests than asking for the rest by id, which the
engine then does (the entity's lookup). A sweep (every `sweep_interval_hours`, and the
first run) reads every page. `start_date` ends the read at the first page that reaches
below it; older records are left out.

A listed `created_at` that cannot be read neither ends the read nor moves the boundary:
the records around it decide.

Cursor (the ledger's `cursor`): boundary {"at": created_at at full precision, "ids": [...]}.
The projects list is short and read whole every run (`whole_list`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from .._common.engine import Listing
from .._common.http import ApiClient
from .._common.ledger import EntityLedger
from .._common.paginators import PageNumberPaginator
from .._common.records import read_instant
from .._common.report import RunReport
from .helpers import created_at_problem, record_id

BOUNDARY = "boundary"


def _pages(client: ApiClient, path: str, page_size: int) -> Iterator[list]:
    paginator = PageNumberPaginator(page_size=page_size, size_param="page_size",
                                    total_pages_path="meta.total_pages")
    for page in client.paginate(path, paginator=paginator, items_path="items"):
        yield page.items


def whole_list(client: ApiClient, path: str, page_size: int) -> Callable[[], list]:
    """Every item of a short list (the projects), read page by page."""
    return lambda: [item for items in _pages(client, path, page_size) for item in items]


class NewestFirstListing(Listing):
    """The pages of one newest-first list (transcripts or reports) a run reads."""

    def __init__(self, book: EntityLedger, client: ApiClient, report: RunReport, *, path: str,
                 start: datetime | None, sweep_interval_hours: float, page_size: int,
                 now: datetime) -> None:
        self.book, self.client, self.report, self.path = book, client, report, path
        self.start, self.page_size = start, page_size
        self.sweep = book.sweep_due(sweep_interval_hours, now)
        boundary = book.cursor.get(BOUNDARY) or {}
        self.at = read_instant(boundary.get("at"))
        self.ids = set(boundary.get("ids") or [])
        self.read: dict[str, datetime | None] = {}  # id -> created_at of every record read

    # ---------------------------------------------------------------- reading
    def _created(self, item: object) -> datetime | None:
        """Its `created_at` (None: unreadable, and the record is named); remembers it as read."""
        rid = record_id(item)
        if rid is None:
            return None  # the engine names it
        created = read_instant(item.get("created_at"))  # type: ignore[union-attr]
        if created is None:
            self.report.bad_record(self.path, rid, created_at_problem(item) or "created_at", loaded=True)
        self.read.setdefault(rid, created)
        return created

    def _older(self, created: datetime | None) -> bool:
        return created is not None and self.start is not None and created < self.start

    def _reached(self, item: object, created: datetime | None) -> bool:
        """At or below the boundary (or start_date): loaded by an earlier run."""
        if created is None:
            return False
        if self._older(created):
            return True
        return self.at is not None and (created < self.at or (created == self.at and record_id(item) in self.ids))

    def _waiting_below(self, floor: datetime) -> int:
        """Records still processing, not read this run, listed below `floor`."""
        count = 0
        for rid in self.book.ids():
            entry = self.book.get(rid) or {}
            day = read_instant(entry.get("day"))
            if entry.get("waiting") and rid not in self.read and day is not None and day < floor:
                count += 1
        return count

    def pages(self) -> Iterator[list]:
        reached, extra = False, 0
        for items in _pages(self.client, self.path, self.page_size):
            dated = [(item, self._created(item)) for item in items]
            yield [item for item, created in dated if not self._older(created)]
            dates = [created for _, created in dated if created is not None]
            if any(self._older(created) for created in dates):
                return  # everything further down is older than start_date
            if self.sweep:
                continue
            if reached:
                extra += 1
            elif any(self._reached(item, created) for item, created in dated):
                reached = True
            # a page more costs one request; asking for the waiting records below costs one each
            if reached and (not dates or self._waiting_below(min(dates)) <= extra):
                return

    def covers(self, record_id: str, entry: dict) -> bool:
        """Known records the read reached (not those below start_date)."""
        return not self._older(read_instant(entry.get("day")))

    def finished(self, complete: bool) -> None:
        """A read to its end moves the boundary to the newest record it saw."""
        if not complete:
            return
        at, ids = self.at, set(self.ids)
        for rid, created in self.read.items():
            if created is None:
                continue
            if at is None or created > at:
                at, ids = created, {rid}
            elif created == at:
                ids.add(rid)
        if at is not None:
            # full precision: the boundary is compared with the API's own instants
            self.book.cursor[BOUNDARY] = {"at": at.isoformat(), "ids": sorted(ids)}
