"""Which pages of the conversations list and of the calendar a run reads.

Conversations have no updated-at field. New ones are found with `since` (from the newest
`startTime` seen, less `LOOKBACK`, or from the oldest one still being recorded or
transcribed, for up to `OPEN_TIMEOUT`). Renames, transcript changes (`segmentCount` moved)
and deletions are found by a full listing of the list pages, the sweep, every
`sweep_interval_hours`; the first run's full listing is the backfill. A full listing the
budget cuts short resumes at its offset (less `RESUME_OVERLAP`) on the next run, and its
deletion check then leaves out the conversations it saw in the runs before.

Cursor (the ledger's `cursor` of `conversations`):
    newest:   the newest `startTime` seen (UTC); moved by a `since` listing only once it is
              complete, by a full listing page by page (it goes on until it is complete)
    listing:  {"offset", "seen": [ids], "kind": "sweep" | "first listing"} while a full
              listing is under way

The calendar is a window around now, read whole every run (see `CalendarListing`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from .._common.engine import Listing
from .._common.errors import ScopeError
from .._common.http import ApiClient
from .._common.ledger import EntityLedger
from .._common.paginators import OffsetPaginator
from .._common.records import excerpt, is_blank, read_instant
from .._common.report import RunReport
from .._common.timeutil import iso
from .helpers import NOT_CONNECTED, Listed, calendar_not_connected, event_start, read_conversations
from .settings import (
    CALENDAR_CURSOR_OVERLAP,
    CALENDAR_PAGE_MAX,
    LOOKBACK,
    OPEN_TIMEOUT,
    RESUME_OVERLAP,
)


class ConversationListing(Listing):
    """The `since` listing of one run, then the full listing when one is due or under way."""

    def __init__(self, book: EntityLedger, client: ApiClient, report: RunReport, *, now: datetime,
                 start_date: datetime | None, sweep_interval_hours: float, page_size: int,
                 loads_rows: bool = True) -> None:
        self.book, self.client, self.report, self.now = book, client, report, now
        self.start_date, self.page_size = start_date, page_size
        self.newest = read_instant(book.cursor.get("newest"))
        self.resumed: dict | None = book.cursor.get("listing")
        # the first listing is a sweep too: it knows no records, so it marks none, and a
        # resumed one leaves out what it saw before. So is a run that loads the rows when
        # earlier runs listed conversations without them (only a per-item table selected).
        self.sweep = self.newest is None or self.resumed is not None or \
            book.sweep_due(sweep_interval_hours, now) or \
            (loads_rows and any("version" not in (book.get(rid) or {}) for rid in book.ids()))
        self.kind = (self.resumed or {}).get("kind") or ("sweep" if len(book) else "first listing")
        self.seen_before = set((self.resumed or {}).get("seen") or [])
        self.offset = int((self.resumed or {}).get("offset") or 0)
        self.since = self._since() if self.newest is not None else None
        self.seen: set[str] = set()
        self.started = self.done = False
        self._totals: set[Any] = set()

    def _since(self) -> datetime:
        """The newest start less `LOOKBACK`, or earlier: the oldest still being recorded."""
        since = self.newest - LOOKBACK
        for record_id in list(self.book.ids()):
            entry = self.book.get(record_id) or {}
            began = read_instant(entry.get("day"))
            if not entry.get("waiting") or began is None:
                continue
            if self.now - began > OPEN_TIMEOUT:
                self.book.set_waiting(record_id, False)  # left to the sweep
                self.report.warn(f"conversation {record_id} has had no transcript for {OPEN_TIMEOUT.days} "
                                 "days; the sweep will pick it up if one ever appears")
            else:
                since = min(since, began - timedelta(seconds=1))
        return max(since, self.start_date) if self.start_date else since

    # ---------------------------------------------------------------- reading
    def pages(self) -> Iterator[list[Listed]]:
        if self.since is not None:
            newest = self.newest
            for items in self._pages(self.since, 0, full=False):
                newest = _newest(newest, items)
                yield items
            self.newest = newest  # only now: a cut `since` listing is read again from the same place
        if self.sweep:
            self.started = True
            resume = max(0, self.offset - RESUME_OVERLAP) if self.offset else 0
            for items in self._pages(self.start_date, resume, full=True):
                self.newest = _newest(self.newest, items)
                yield items
            self.done = True

    def _pages(self, since: datetime | None, offset: int, *, full: bool) -> Iterator[list[Listed]]:
        paginator = OffsetPaginator(self.page_size, offset=offset, total_path="pagination.total")
        for page in self.client.paginate("conversations", paginator=paginator, items_path="data",
                                         params={"since": iso(since) if since else None}):
            listed = read_conversations(page.items, self.report)
            self.seen.update(item.id for item in listed)
            if full:
                self.offset = paginator.offset
                pagination = page.response.body.get("pagination") if isinstance(page.response.body, dict) else None
                self._totals.add((pagination or {}).get("total") if isinstance(pagination, dict) else None)
                # the list changed while it was paged (one added or deleted above the page read):
                # a row may have been skipped, so this sweep marks no deletions
                self.stable = len(self._totals) <= 1
            yield listed

    def covers(self, record_id: str, entry: dict) -> bool:
        """Known conversations since `start_date`, not already seen by the runs this full
        listing began in."""
        if record_id in self.seen_before:
            return False
        if self.start_date is None:
            return True
        start = read_instant(entry.get("day"))
        return start is not None and start >= self.start_date

    def finished(self, complete: bool) -> None:
        cursor = self.book.cursor
        if self.newest is not None:
            cursor["newest"] = iso(self.newest)
        if not self.sweep:
            return
        if self.done:
            cursor.pop("listing", None)
        elif self.started or self.resumed is not None:
            cursor["listing"] = {"offset": self.offset, "seen": sorted(self.seen_before | self.seen),
                                 "kind": self.kind}
            self.report.wait("conversations (list)", f"the {self.kind} stopped at offset {self.offset}; "
                             "it resumes there next run")


def _newest(newest: datetime | None, items: list[Listed]) -> datetime | None:
    for item in items:
        at = read_instant(item.start)
        if at is not None and (newest is None or at > newest):
            newest = at
    return newest


class CalendarListing(Listing):
    """The events of [now - days_back, now + days_ahead), read whole every run.

    `GET /calendar/events` has no paging: it answers at most 50 events starting after
    `timeMin`, soonest first. The listing asks again from the last event's start (less a
    second, so events sharing that instant are not skipped; repeats are dropped by id) until
    a short answer. Every complete read is a sweep of the window: known events in it that it
    no longer shows were cancelled. Events that left the window by age are forgotten, never
    marked; so is one without a readable start that is no longer listed (it cannot be told
    cancelled from moved away). Without a connected Google Calendar the table is skipped,
    and looked for again only at the next sweep (it costs a request).

    Cursor (the ledger's `cursor` of `calendar_events`): not_connected_at.
    """

    timed = False  # every run reads the whole window

    def __init__(self, book: EntityLedger, client: ApiClient, report: RunReport, *, now: datetime,
                 days_back: float, days_ahead: float, sweep_interval_hours: float) -> None:
        self.book, self.client, self.report, self.now = book, client, report, now
        self.time_min, self.time_max = now - timedelta(days=days_back), now + timedelta(days=days_ahead)
        self.sweep = True
        self.seen: set[str] = set()
        self.not_connected = False
        probe = read_instant(book.cursor.get("not_connected_at"))
        self.skip = probe is not None and sweep_interval_hours > 0 and \
            now - probe < timedelta(hours=sweep_interval_hours)
        for record_id in list(book.ids()):
            start = read_instant((book.get(record_id) or {}).get("day"))
            if start is not None and start < self.time_min:
                book.forget(record_id)  # left the window by age, not cancelled

    def pages(self) -> Iterator[list[dict]]:
        if self.skip:
            raise ScopeError(f"{NOT_CONNECTED}; looked for again at the next sweep")
        cursor = self.time_min
        while True:
            params = {"maxResults": CALENDAR_PAGE_MAX, "timeMin": iso(cursor), "timeMax": iso(self.time_max)}
            answer = self.client.get("calendar/events", params, accept=calendar_not_connected)
            if calendar_not_connected(answer):
                self.not_connected = True
                raise ScopeError(NOT_CONNECTED, status=answer.status, url=answer.url)
            items = answer.body.get("data") if isinstance(answer.body, dict) else None
            items = items if isinstance(items, list) else []
            events = []
            for event in items:
                if not isinstance(event, dict) or is_blank(event.get("id")):
                    self.report.bad_record("calendar_events", excerpt(event),
                                           "a calendar event without an id: not loaded", loaded=False)
                elif str(event["id"]) not in self.seen:
                    self.seen.add(str(event["id"]))
                    events.append(event)
            yield events
            if len(items) < CALENDAR_PAGE_MAX:
                return
            starts = [s for s, _ in (event_start(e) for e in items if isinstance(e, dict)) if s]
            last = max(starts) - CALENDAR_CURSOR_OVERLAP if starts else None
            if not events or last is None or last <= cursor:
                self.report.warn(f"calendar_events: more than {CALENDAR_PAGE_MAX} events at {iso(cursor)}; "
                                 "the rest of the window is not loaded this run")
                self.sweep = False  # not the whole window: no cancellations this run
                return
            cursor = last

    def covers(self, record_id: str, entry: dict) -> bool:
        start = read_instant(entry.get("day"))
        return start is not None and self.time_min <= start < self.time_max

    def finished(self, complete: bool) -> None:
        cursor = self.book.cursor
        if self.not_connected:
            cursor["not_connected_at"] = iso(self.now)
        elif complete:
            cursor.pop("not_connected_at", None)
        if complete and self.sweep:
            for record_id in list(self.book.ids()):
                if record_id not in self.seen and not (self.book.get(record_id) or {}).get("day"):
                    self.book.forget(record_id)
