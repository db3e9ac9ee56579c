"""Which pages of each Meetric list a run reads, account by account (the engine's `Listing`s).

Every list is read for each account in turn; an account is a group of the engine, so a key
whose role may not read an endpoint skips that account only, and deletions are checked per
account. Pages are offset-paged (`OffsetPages`) and handed to the engine in batches of up to
`BATCH_ROWS` rows (dlt's cost per page is high, per row low). A record's version is the hash
of its content (`digest_of`), so re-reading a window or sweeping a whole list loads nothing
that did not change. Sweeps (the first run, then every `sweep_interval_hours`) read whole
lists and mark what they no longer show as deleted.

- conversations: the meeting `date` filter; each run re-reads `lookback_days` before the
  newest date listed, plus, by narrow `start_date`/`end_date` lists, the dates of those
  still `processing` (the ledger's `waiting`, for `PENDING_MAX_AGE` after their date).
- insights: the `created_at` day filter, from the newest day listed less `INSIGHT_OVERLAP`.
- action items: newest `updated_at` first, read down to the newest one listed less
  `ACTION_ITEM_OVERLAP` (a status change moves an item to the top).
- users: the whole list every run (it is short), read once per run for the users table and
  for the teams and departments whose managers load (`Account.users`).
- teams, departments: the ids the users name, and those known from earlier runs; each owes
  its managers call for a new round only: on a sweep, and when the account's users changed.
- insight_trends, insight_summary: daily series recomputed for the trailing window (trends:
  the whole history on the first run and on sweeps; summary: the first run backfills
  `summary_backfill_days`), plus the older summary days something of which changed
  (`SummaryDays`).

Cursors (the ledger's `cursor` of each entity), by account id: conversations and insights
`newest_day`, action_items `newest` (an instant), insight_trends `read` (accounts whose
history was read once), insight_summary `first_day` and `dirty` (days to ask again), teams
and departments `epoch` (when the last sweep's round began). A cursor moves only for the
accounts whose pages were all read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dlt

from .._common.concurrency import map_ordered
from .._common.engine import Listing
from .._common.http import ApiClient
from .._common.ledger import EntityLedger, Ledger
from .._common.paginators import OffsetPaginator, dig
from .._common.report import RunReport
from .._common.timeutil import iso
from .helpers import INSIGHT_TYPES, day, digest_of, instant, with_id
from .settings import (
    ACTION_ITEM_OVERLAP,
    BATCH_ROWS,
    ENDPOINTS,
    INSIGHT_OVERLAP,
    PENDING_MAX_AGE,
    TRENDS_CHUNK_DAYS,
)

if TYPE_CHECKING:
    from .accounts import Account


@dataclass(frozen=True)
class Options:
    """The source's tuning, as the listings need it."""

    start_date: date | None
    sweep_interval_hours: float
    lookback_days: int
    summary_backfill_days: int
    page_size: int


# ---------------------------------------------------------------------- record keys
def trend_key(item: dict) -> str:
    return f"{item['account_id']}/{str(item['period_start'])[:10]}"


def summary_key(item: dict) -> str:
    return f"{item['account_id']}/{item['period_start']}/{item['period_end']}"


# ---------------------------------------------------------------------- paging
class OffsetPages:
    """Offset-paged lists: every page in order, the pages after the first fetched concurrently.

    The API pages with `limit`/`offset` and reports `pagination.total`, so once the first page
    is in, every other offset is known and they can be fetched side by side (`map_ordered`,
    pages still yielded in order). Lists are newest first: a record added while paging
    shifts later pages by one (a record seen twice: harmless); one deleted while paging
    shifts them back (a record missed). `stable` tells whether `total` held still: only a
    stable, complete listing may be used to decide that something was deleted.
    """

    def __init__(self, client: ApiClient, path: str, params: dict[str, Any] | None, page_size: int) -> None:
        self.client, self.path, self.page_size = client, path, page_size
        self.params = {k: v for k, v in (params or {}).items() if v is not None}
        self.stable = True
        self._total: int | None = None

    def _fetch(self, offset: int) -> tuple[list, bool, Any]:
        body = self.client.get(self.path, {**self.params, "limit": self.page_size, "offset": offset}).body
        items = dig(body, "data") or []
        if not isinstance(items, list):
            items = []
        total = dig(body, "pagination.total")
        if self._total is not None and total != self._total:
            self.stable = False
        return items, bool(dig(body, "pagination.has_more")), total

    def pages(self) -> Iterator[list[dict]]:
        """Every page, in the API's order (the first page's total decides the rest)."""
        items, more, total = self._fetch(0)
        self._total = total
        yield items
        offset = len(items)
        if more and isinstance(total, int) and len(items) == self.page_size:
            offsets = range(self.page_size, total, self.page_size)
            for at, result in map_ordered(self._fetch, offsets, self.client.settings.concurrency):
                if isinstance(result, BaseException):
                    raise result
                items, more, _ = result
                offset = at + len(items)
                yield items
        while more and items:  # the list grew while it was read, or no total was given
            items, more, _ = self._fetch(offset)
            offset += len(items)
            yield items


def sequential_pages(client: ApiClient, path: str, params: dict[str, Any] | None,
                     page_size: int) -> Iterator[list[dict]]:
    """Pages one after another, for reads that stop early (newest first, down to a cursor)."""
    paginator = OffsetPaginator(page_size, total_path="pagination.total",
                                has_more_path="pagination.has_more")
    for page in client.paginate(path, paginator=paginator, items_path="data", params=params):
        yield page.items


# ---------------------------------------------------------------------- summary days
class SummaryDays:
    """Days before the refreshed window whose daily summary moved (a conversation processed
    or deleted late, an action item's new status, a trend day that changed), per account:
    noted by those listings, asked again by the summary's on its next pass (the same run,
    or the next). Kept in the summary's ledger cursor (`dirty`)."""

    def __init__(self, options: Options, now: datetime) -> None:
        self.edge = (now.date() - timedelta(days=options.lookback_days)).isoformat()

    @staticmethod
    def _store() -> dict[str, list[str]]:
        return Ledger(dlt.current.source_state()).entity("insight_summary").cursor.setdefault("dirty", {})

    def note(self, account_id: str, days: set[str | None]) -> None:
        days = {d for d in days if d and d < self.edge}  # the window is asked anyway
        if days:
            store = self._store()
            store[account_id] = sorted(set(store.get(account_id, [])) | days)

    def of(self, account_id: str) -> list[str]:
        return list(self._store().get(account_id, []))

    def asked(self, account_id: str, days: set[str], first_day: str) -> None:
        """These days were asked again (and loaded): no longer owed."""
        store = self._store()
        left = [d for d in store.get(account_id, []) if d not in days and d >= first_day]
        if left:
            store[account_id] = left
        else:
            store.pop(account_id, None)


# ---------------------------------------------------------------------- listings
class AccountListing(Listing):
    """A list read for every account in turn; `account_pages` reads one account's."""

    entity = ""
    sweeps = False  # a sweep every `sweep_interval_hours` (and on the first run)
    cursor_name: str | None = None  # the cursor it keeps per account: `newest`, staged per account

    def __init__(self, book: EntityLedger, accounts: list[Account], report: RunReport, options: Options,
                 now: datetime, days: SummaryDays | None = None) -> None:
        self.book, self.accounts, self.report, self.options = book, accounts, report, options
        self.now, self.today, self.days = now, now.date(), days
        self.read: set[str] = set()  # accounts whose pages were all read (and handed over)
        self.staged: dict[str, Any] = {}  # each account's cursor, kept if its pages were all read
        if self.sweeps:
            self.sweep = book.sweep_due(options.sweep_interval_hours, now)
        self.newest: dict[str, Any] = dict(book.cursor.get(self.cursor_name) or {}) if self.cursor_name else {}

    def by_group(self) -> Iterator[tuple[str | None, Iterator[list]]]:
        for account in self.accounts:
            yield account.id, self._batched(account)

    def pages(self) -> Iterator[list]:
        for _, pages in self.by_group():
            yield from pages

    def _batched(self, account: Account) -> Iterator[list[dict]]:
        batch: list[dict] = []
        for items in self.account_pages(account):
            batch.extend(items)
            if len(batch) >= BATCH_ROWS:
                yield batch
                batch = []
        if batch:
            yield batch
        self.read.add(account.id)

    def account_pages(self, account: Account) -> Iterator[list[dict]]:
        raise NotImplementedError

    def where(self, account: Account) -> str:
        return f"{self.entity}: account '{account.id}'"

    def offset(self, account: Account, path: str, params: dict[str, Any] | None) -> Iterator[list[dict]]:
        pages = OffsetPages(account.client, path, params, self.options.page_size)
        for items in pages.pages():
            yield with_id(items, self.entity, account.id, self.report)
        self.stable = self.stable and pages.stable

    def known(self, account: Account) -> list[str]:
        return [rid for rid, entry in self.book.entries() if entry.get("group") == account.id]

    def changed(self, record_id: str, item: dict) -> bool:
        """The entity's version test: will this item's row be loaded?"""
        return (self.book.get(record_id) or {}).get("version") != digest_of(item)

    def finished(self, complete: bool) -> None:
        """The staged cursor of every account read whole becomes its cursor."""
        if self.cursor_name:
            cursor = self.book.cursor.setdefault(self.cursor_name, {})
            for account_id in self.read:
                if self.staged.get(account_id) is not None:
                    cursor[account_id] = self.staged[account_id]


class ConversationListing(AccountListing):
    entity, sweeps, cursor_name = "conversations", True, "newest_day"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.too_old = (self.today - PENDING_MAX_AGE).isoformat()
        self.checked: dict[str, tuple[str | None, str | None]] = {}  # deletion candidates: (account, day)
        self._give_up_stale()

    def _give_up_stale(self) -> None:
        """Conversations still processing long after their date are left to the sweeps."""
        stale: dict[str, list[tuple[str, str]]] = {}
        for rid, entry in self.book.waiting():
            if entry.get("day") and entry["day"] < self.too_old:
                stale.setdefault(str(entry.get("group")), []).append((entry["day"], rid))
        for account_id, found in sorted(stale.items()):
            for _, rid in found:
                self.book.set_waiting(rid, False)
            when, cid = max(found)
            self.report.warn(f"conversations: account '{account_id}': {len(found)} conversations are still "
                             f"processing more than {PENDING_MAX_AGE.days} days after their date (e.g. {cid}, "
                             f"{when}); only sweeps re-read them from now on")

    def ranges(self, account: Account) -> list[tuple[date | None, date | None]]:
        """The (start_date, end_date) lists this run reads, inclusive; None is open."""
        start = self.options.start_date
        newest = self.newest.get(account.id)
        if self.sweep or not newest:
            return [(start, None)]
        window = date.fromisoformat(newest) - timedelta(days=self.options.lookback_days)
        window = max(window, start) if start else window
        waiting = {entry.get("day") for _, entry in self.book.waiting() if entry.get("group") == account.id}
        ranges: list[tuple[date | None, date | None]] = [(window, None)]
        for d in sorted(date.fromisoformat(w) for w in waiting if w and w < window.isoformat()):
            last = ranges[-1]  # consecutive days share one list
            if len(ranges) > 1 and last[1] is not None and d - last[1] <= timedelta(days=1):
                ranges[-1] = (last[0], d)
            else:
                ranges.append((d, d))
        return ranges

    def account_pages(self, account: Account) -> Iterator[list[dict]]:
        first = account.id not in self.newest
        newest = self.newest.get(account.id)
        for start, end in self.ranges(account):
            params = {"start_date": start.isoformat() if start else None,
                      "end_date": end.isoformat() if end else None}
            for items in self.offset(account, ENDPOINTS["conversations"], params):
                changed: set[str | None] = set()
                for item in items:
                    found = day(item.get("date"))
                    if found is None:
                        self.report.warn(f"{self.where(account)}: conversation {item['id']} has no valid date "
                                         f"({str(item.get('date'))[:40]!r}); loaded, but only sweeps re-read it")
                    elif newest is None or found.isoformat() > newest:
                        newest = found.isoformat()
                    if found is not None and not first and self.changed(str(item["id"]), item):
                        changed.add(found.isoformat())  # processed or changed late: its day's summary moved
                self.days.note(account.id, changed)
                yield items
        self.staged[account.id] = newest

    def covers(self, record_id: str, entry: dict) -> bool:
        start, when = self.options.start_date, entry.get("day")
        self.checked[record_id] = (entry.get("group"), when)
        return start is None or when is None or when >= start.isoformat()

    def finished(self, complete: bool) -> None:
        super().finished(complete)
        for record_id, (account_id, when) in self.checked.items():
            if record_id not in self.book and account_id:  # deleted: its day's summary moved
                self.days.note(account_id, {when})


class InsightListing(AccountListing):
    entity, sweeps, cursor_name = "insights", True, "newest_day"

    def account_pages(self, account: Account) -> Iterator[list[dict]]:
        start, newest = self.options.start_date, self.newest.get(account.id)
        if not self.sweep and newest:
            since = date.fromisoformat(newest) - INSIGHT_OVERLAP
            start = max(since, start) if start else since
        params = {"start_date": start.isoformat() if start else None}
        for items in self.offset(account, ENDPOINTS["insights"], params):
            for item in items:
                found = day(item.get("created_at"))
                if found is not None and (newest is None or found.isoformat() > newest):
                    newest = found.isoformat()
                if item.get("type") not in INSIGHT_TYPES:
                    self.report.warn(f"{self.where(account)}: insight {item['id']} has an unknown type "
                                     f"{str(item.get('type'))[:40]!r}; loaded with its fields as they are")
            yield items
        self.staged[account.id] = newest


class ActionItemListing(AccountListing):
    entity, sweeps, cursor_name = "action_items", True, "newest"

    def account_pages(self, account: Account) -> Iterator[list[dict]]:
        cursor, start = instant(self.newest.get(account.id)), self.options.start_date
        if self.sweep or cursor is None:
            pages, stop_at = self.offset(account, ENDPOINTS["action_items"], None), None
        else:
            pages = (with_id(items, self.entity, account.id, self.report) for items in sequential_pages(
                account.client, ENDPOINTS["action_items"], None, self.options.page_size))
            stop_at = cursor - ACTION_ITEM_OVERLAP
        newest = cursor
        for items in pages:
            keep, reached = [], False
            for item in items:
                updated = instant(item.get("updated_at"))
                if stop_at is not None and updated is not None and updated < stop_at:
                    reached = True  # newest first: everything after this is already listed
                    break
                if updated is not None and (newest is None or updated > newest):
                    newest = updated
                created = day(item.get("created_at"))
                if start is not None and created is not None and created < start:
                    continue
                keep.append(item)
            if cursor is not None:  # a new status moves the summary of its conversation's day
                self.days.note(account.id, self._days_of([i for i in keep if self.changed(str(i["id"]), i)]))
            yield keep
            if reached:
                break
        self.staged[account.id] = iso(newest) if newest is not None else None

    @staticmethod
    def _days_of(items: list[dict]) -> set[str | None]:
        conversations = Ledger(dlt.current.source_state()).entity("conversations")
        return {(conversations.get(str(i.get("conversation_id"))) or {}).get("day") for i in items}


class UserListing(AccountListing):
    """The whole list every run: every run may check deletions."""

    entity = "users"
    sweep = True
    timed = False

    def account_pages(self, account: Account) -> Iterator[list[dict]]:
        users, stable = account.users()
        self.stable = self.stable and stable
        yield users


class ManagedListing(AccountListing):
    """The teams (or departments) of each account, by the ids its users name plus those known
    from earlier runs (one that vanished answers 404 once: its managers are marked). Each is
    listed every run; its version is the account's round (a hash of the sweep's epoch and
    the account's users), so it owes its managers call only on a sweep, or when a user of
    its account changed. Deletions are the 404s, not the list's."""

    sweeps = True

    def __init__(self, book: EntityLedger, accounts: list[Account], report: RunReport, options: Options,
                 now: datetime, *, entity: str, column: str) -> None:
        super().__init__(book, accounts, report, options, now)
        self.entity, self.column = entity, column
        if self.sweep:
            book.cursor["epoch"] = iso(now)

    def account_pages(self, account: Account) -> Iterator[list[dict]]:
        users, _ = account.users()
        named = {str(u[self.column]) for u in users if u.get(self.column)}
        round_ = digest_of([self.book.cursor.get("epoch"), digest_of(users)])
        yield [{"id": target, "account_id": account.id, "round": round_}
               for target in sorted(named | set(self.known(account)))]

    def covers(self, record_id: str, entry: dict) -> bool:
        return False


class TrendListing(AccountListing):
    """`/insights/trends?interval=day`, `TRENDS_CHUNK_DAYS` a request: the trailing window,
    the whole history on an account's first run and on sweeps (no deletions: a day is
    recomputed, never deleted)."""

    entity, sweeps = "insight_trends", True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.done = set(self.book.cursor.get("read") or [])

    def account_pages(self, account: Account) -> Iterator[list[dict]]:
        known = account.id in self.done
        if self.sweep or not known:
            start = account.first_date() or self.today
        else:
            start = self.today - timedelta(days=self.options.lookback_days)
            start = max(start, self.options.start_date) if self.options.start_date else start
        start = min(start, self.today)
        while start <= self.today:
            end = min(self.today, start + timedelta(days=TRENDS_CHUNK_DAYS - 1))
            body = account.client.get(ENDPOINTS["insight_trends"], {
                "start_date": start.isoformat(), "end_date": end.isoformat(), "interval": "day"}).body
            data = dig(body, "data")
            rows = [r for r in (data if isinstance(data, list) else []) if isinstance(r, dict)]
            bad = [r for r in rows if not r.get("period_start")]
            if bad:
                self.report.warn(f"{self.where(account)}: {len(bad)} trend rows without period_start were not "
                                 f"loaded, e.g. {str(bad[0])[:120]}")
            items = [{**r, "account_id": account.id} for r in rows if r.get("period_start")]
            if known:  # a day whose figures moved: its summary moved too
                self.days.note(account.id, {str(i["period_start"])[:10] for i in items
                                            if self.changed(trend_key(i), i)})
            yield items
            start = end + timedelta(days=1)

    def covers(self, record_id: str, entry: dict) -> bool:
        return False

    def finished(self, complete: bool) -> None:
        self.book.cursor["read"] = sorted(self.done | self.read)


class SummaryListing(AccountListing):
    """`/insights/summary`, one request a day (`start_date` = `end_date`): the trailing window,
    `summary_backfill_days` on an account's first run, and the older days noted since."""

    entity = "insight_summary"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_day: dict[str, str] = dict(self.book.cursor.get("first_day") or {})

    def account_pages(self, account: Account) -> Iterator[list[dict]]:
        first = account.id not in self.first_day
        if first:
            start = account.first_date() or self.today
            start = max(start, self.today - timedelta(days=self.options.summary_backfill_days))
        else:
            start = self.today - timedelta(days=self.options.lookback_days)
            start = max(start, self.options.start_date) if self.options.start_date else start
        start = min(start, self.today)
        origin = self.first_day.get(account.id) or start.isoformat()
        asked = {d for d in self.days.of(account.id) if origin <= d < start.isoformat()}
        days = sorted({date.fromisoformat(d) for d in asked}
                      | {start + timedelta(days=n) for n in range((self.today - start).days + 1)})
        self.staged[account.id] = (start.isoformat() if first else None, asked, origin)

        def fetch(d: date) -> Any:
            return account.client.get(ENDPOINTS["insight_summary"],
                                      {"start_date": d.isoformat(), "end_date": d.isoformat()}).body

        for d, result in map_ordered(fetch, days, account.client.settings.concurrency):
            if isinstance(result, BaseException):
                raise result
            data = dig(result, "data")
            if not isinstance(data, dict):
                self.report.warn(f"{self.where(account)}: no summary for {d}: {str(result)[:120]}")
                continue
            yield [{**data, "period_start": data.get("period_start") or d.isoformat(),
                    "period_end": data.get("period_end") or d.isoformat(), "account_id": account.id}]

    def finished(self, complete: bool) -> None:
        for account_id in self.read:
            first_start, asked, origin = self.staged[account_id]
            if first_start:
                self.book.cursor.setdefault("first_day", {})[account_id] = first_start
            self.days.asked(account_id, asked, origin)
