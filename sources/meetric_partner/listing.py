"""Which stretches of the 30-day conversations list a run reads.

Between sweeps a run lists only the recent end of the window: back to the newest
conversation already seen, less `LOOKBACK`, or to the oldest one still processing or whose
row was never loaded (a run that selected other tables). Conversations that only owe their
details (a run stopped at its checkpoint, the quota) are not listed again: the engine asks
for them from the ledger's backlog. A sweep (every `sweep_interval_hours`, and the first
run) lists the whole window, which also reveals deletions. Windows are computed on the API's clock.

A listing cut short (a rate limit, the quota, the run's request budget) is remembered as
the stretch of dates it did not reach (`unlisted`) and listed first by the next run; a cut
sweep checks no deletions. Conversations that aged out of the window are forgotten, never
marked deleted.

Cursor (in the ledger, `cursor`): newest_date, unlisted {"from", "to"} (to null: up to now).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._common.engine import Listing
from .._common.http import ApiClient
from .._common.ledger import EntityLedger
from .._common.paginators import CursorPaginator
from .._common.records import read_instant
from .._common.report import RunReport
from .._common.timeutil import iso
from .helpers import Listed, read_list_page
from .settings import DELETION_MARGIN, LOOKBACK, WINDOW, WINDOW_SAFETY


@dataclass
class Stretch:
    """One stretch of the list this run reads, newest first: dates in [frm, to]."""

    frm: datetime
    to: datetime | None  # None: up to now
    lowest: datetime | None = None  # the lowest readable date read so far


class ConversationListing(Listing):
    """The stretches of the conversations list one run reads."""

    def __init__(self, book: EntityLedger, client: ApiClient, report: RunReport, *, now: datetime,
                 start_date: datetime | None, sweep_interval_hours: float, page_size: int,
                 observe: Callable[[Any], None]) -> None:
        self.book, self.client, self.report, self.now = book, client, report, now
        self.page_size, self.observe = page_size, observe
        self.window_start = now - WINDOW + WINDOW_SAFETY
        self.earliest = max(self.window_start, start_date) if start_date else self.window_start
        self.sweep = book.sweep_due(sweep_interval_hours, now)
        self.cut: Stretch | None = None
        self.cut_reason = ""
        self.reading: Stretch | None = None
        self.newest = read_instant(book.cursor.get("newest_date"))
        self._forget_what_left_the_window()
        self.stretches = self._plan()

    # ---------------------------------------------------------------- planning
    def _when(self, value: str | None) -> datetime:
        """A bookkeeping instant; an unreadable one counts as the window's start."""
        return read_instant(value) or self.window_start

    def _forget_what_left_the_window(self) -> None:
        if self.newest is not None and self.newest < self.window_start:
            self.report.warn(
                f"the previous run saw conversations up to {iso(self.newest)}, but the API now shows only "
                f"those since {iso(self.window_start)}: conversations between them were never loaded. "
                "Schedule runs at least every few days to avoid gaps.")
        lost = [rid for rid in self.book.ids() if self._unfinished(rid)
                and self._when(self.book.get(rid).get("day")) < self.window_start]
        if lost:
            self.report.warn(f"{len(lost)} conversations left the 30-day window before their details "
                             f"could be loaded (e.g. {lost[0]})")
            for rid in lost:
                self.book.give_up(rid)
        for rid in [r for r in self.book.ids()
                    if self._when(self.book.get(r).get("day")) < self.window_start - WINDOW]:
            self.book.forget(rid)  # aged out long ago: it cannot come back into the list

    def _unfinished(self, record_id: str) -> bool:
        entry = self.book.get(record_id) or {}
        return bool(entry.get("owed") or entry.get("waiting"))

    def _recent_from(self) -> datetime:
        if self.sweep or self.newest is None:
            return self.earliest
        start = self.newest - LOOKBACK
        for rid in self.book.ids():
            entry = self.book.get(rid) or {}
            # the vendor may finish these any time, and a row never loaded (a run that
            # selected other tables) is only in the list: list back to them
            if entry.get("waiting") or "version" not in entry:
                start = min(start, self._when(entry.get("day")))
        return max(start, self.earliest)

    def _plan(self) -> list[Stretch]:
        """First what a cut listing left unlisted, then the recent end (or the window)."""
        gap = self.book.cursor.get("unlisted")
        if gap:
            frm = max(self._when(gap.get("from")), self.earliest)
            to = read_instant(gap.get("to"))
            if to is not None and to < self.earliest:
                self.report.warn(f"conversations dated {gap.get('from')} to {gap.get('to')} were never "
                                 "listed (a cut listing) and have left the 30-day window since")
                del self.book.cursor["unlisted"]
            elif to is None:  # cut before it read a date: list again from where it started
                return [Stretch(min(frm, self._recent_from()), None)]
            else:
                # the cut stretch is listed before a sweep is tried again, so a tight budget
                # still makes progress; the sweep runs once nothing is left unlisted
                self.sweep = False
                return [Stretch(frm, to), Stretch(self._recent_from(), None)]
        return [Stretch(self._recent_from(), None)]

    # ---------------------------------------------------------------- reading
    def pages(self) -> Iterator[list[Listed]]:
        for stretch in self.stretches:
            paginator = CursorPaginator("pagination.next_cursor", "cursor", has_more_path="pagination.has_more")
            params = {"limit": self.page_size, "from": iso(stretch.frm),
                      "to": iso(stretch.to) if stretch.to else None}
            self.reading = stretch  # where a cut (the engine stops the listing) leaves off
            for page in self.client.paginate("conversations", paginator=paginator,
                                             items_path="conversations", params=params):
                self.observe(page.response.body)
                listed = read_list_page(page.items, stretch.frm, self.report)
                for item in listed:
                    if item.date is not None:  # an unreadable date never moves a cursor
                        self.newest = item.date if self.newest is None else max(self.newest, item.date)
                        stretch.lowest = item.date if stretch.lowest is None else min(stretch.lowest, item.date)
                yield listed

    def covers(self, record_id: str, entry: dict) -> bool:
        """Known conversations well inside the window (near its edge they may have aged out)."""
        return self._when(entry.get("day")) >= self.window_start + DELETION_MARGIN

    def finished(self, complete: bool) -> None:
        if not complete and self.stopped and self.reading is not None:
            self.cut, self.cut_reason = self.reading, self.stopped
        cursor = self.book.cursor
        if self.newest is not None:
            cursor["newest_date"] = iso(self.newest)
        if self.cut is not None:
            # the unread stretch: from the cut stretch's start up to the lowest date it read
            to = self.cut.lowest or self.cut.to
            cursor["unlisted"] = {"from": iso(self.cut.frm), "to": iso(to) if to else None}
            self.report.wait("conversations (list)",
                             f"conversations dated {iso(self.cut.frm)} to {iso(to) if to else 'now'} are not "
                             f"listed yet ({self.cut_reason}); the next run lists them first")
            if self.sweep:
                self.report.warn("the sweep was cut before the end of the list: no deletions are marked "
                                 "this run; the next complete sweep marks them")
        elif complete:
            cursor.pop("unlisted", None)
