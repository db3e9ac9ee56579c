"""The list-and-fetch engine every source runs on.

One algorithm, written once: list the vendor's pages, compare each record with the ledger,
load the rows that changed, queue the per-item calls ("parts") a record owes, fan them out,
settle what came back by a table of error actions, and, on a sweep, mark the records the
list no longer shows as deleted. A source supplies only what is its own:

- an `Entity`: how to read a record's id, version and day, which parts a version owes, the
  list row, and the parts themselves (one call each, with what a 404 means);
- a `Listing`: which pages to read this run (windows, cursors, sweeps) and which known
  records the pages it read cover (for the deletion check);
- the row shaping of each table fed by a part.

`entity_resources()` turns these into dlt resources: a feed (not a table) that does the
work, and one transformer per table, so `source.with_resources("transcript_segments")` (or a
Dagster asset per table) loads just that table and still costs one request per item. The
feed asks dlt which tables are selected and fetches only the parts they need.
`chained_resources()` runs several entities in one feed, one after the other, where one's
run changes what the next owes (a new report makes its transcript's detail stale).

What an error means is decided here, once (`ERROR_ACTIONS`), never in a source.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import dlt

from .concurrency import map_ordered
from .deletions import marked_rows
from .errors import (
    AuthError,
    ConfigError,
    MeetingEltError,
    NotFoundError,
    RateLimitError,
    ScopeError,
    UnreachableError,
)
from .ledger import EntityLedger, Ledger, pack_records
from .records import BAD_DATA_ERRORS, excerpt, shape_or_none
from .report import RunReport
from .timeutil import parse_instant

DEFAULT_BATCH = 200  # records whose rows are handed to dlt together
# records fetched per dlt load (`checkpoint_items`): a run that reaches it stops cleanly,
# and the runner loads what was fetched with its state before the next round goes on
DEFAULT_CHECKPOINT_ITEMS = 2000
RETRY_FIRST = timedelta(minutes=30)  # a failed or not-ready part is tried again after this…
RETRY_CAP = timedelta(days=1)  # …doubling up to this
# the cyclic garbage collector's gen-0 threshold while a feed runs (Python's default: 700).
# A run allocates millions of short-lived containers (parsed JSON, rows) next to a ledger of
# one dict per record: at the default, the full collections that walk that ledger cost a
# large account ~15% of its CPU (meetric, 30,000 conversations: 2.9 s of GC, 0.3 s at this).
# Nearly all of a run's garbage is freed by reference counting; cycles wait a little longer.
FEED_GC_THRESHOLD = 50_000


class Action(Enum):
    """What to do with an error, by its kind (Singer's errors, as a table)."""

    ABORT = "abort the run"  # a wrong credential, a bad config: nothing else can work
    SKIP = "skip the part's tables this run, name the scope"  # 403 for a scope or plan
    STOP = "stop cleanly, load what was fetched, continue next run"  # quota, budget, long 429
    NOT_FOUND = "as the part says: the record is deleted, has no such data, or is not ready"
    RETRY = "owe the part again (next run, with back-off)"  # a vendor error that outlasted retries
    BAD_RECORD = "name the record; fetch again only when its version changes"  # malformed data


ERROR_ACTIONS: tuple[tuple[tuple[type[BaseException], ...], Action], ...] = (
    ((AuthError, ConfigError, UnreachableError), Action.ABORT),
    ((ScopeError,), Action.SKIP),
    ((RateLimitError,), Action.STOP),  # QuotaExhausted and BudgetExhausted are RateLimitErrors
    ((NotFoundError,), Action.NOT_FOUND),
    ((MeetingEltError,), Action.RETRY),
    (BAD_DATA_ERRORS, Action.BAD_RECORD),
)


def checkpoint_items_setting(value: int | None) -> int:
    """`checkpoint_items` as configured (None: the default); 0 turns checkpoints off."""
    if value is None:
        return DEFAULT_CHECKPOINT_ITEMS
    if int(value) < 0:
        raise ConfigError(f"checkpoint_items={value} must be 0 (off) or more")
    return int(value)


def action_for(exc: BaseException) -> Action | None:
    """The action for an error; None for a programming error (it propagates)."""
    for kinds, action in ERROR_ACTIONS:
        if isinstance(exc, kinds):
            return action
    return None


@dataclass
class Tolerated:
    """What `tolerate` let pass: the error and its action (both None when nothing failed)."""

    error: BaseException | None = None
    action: Action | None = None


@contextmanager
def tolerate(*actions: Action) -> Iterator[Tolerated]:
    """Ends the block quietly on an error whose action (`ERROR_ACTIONS`) is one of
    `actions`; any other error propagates.

    For calls outside a part whose 404 or 403 only means "nothing here" to the caller (an
    optional extra call, one of several organizations, a page past a list that shrank):
    the engine's table says what the error is, the source says what that means to it.

        with tolerate(Action.NOT_FOUND, Action.SKIP) as failed:
            extra = client.get(path).body
        if failed.action is Action.NOT_FOUND: ...
    """
    outcome = Tolerated()
    try:
        yield outcome
    except Exception as exc:
        action = action_for(exc)
        if action is None or action not in actions:
            raise
        outcome.error, outcome.action = exc, action


class NotFound(Enum):
    """What a 404 on a part means."""

    DELETED = "the record was deleted at the vendor"
    NONE = "the record has no such data: nothing to load, the part is done"
    NOT_READY = "the vendor has not made it yet: owe it again, with back-off"


class Ready(Enum):
    """A part's verdict on a body it fetched."""

    READY = "load it"
    NOT_READY = "not final yet: owe the part again, with back-off"
    NONE = "nothing to load: the part is done"


# ---------------------------------------------------------------------- what a source supplies
@dataclass
class Work:
    """One record's owed parts: {part: version owed}, and its list item when listed this run."""

    record_id: str
    parts: dict[str, str]
    item: dict | None = None
    day: str | None = None
    group: str | None = None  # the record's group (account, organization), listed or not


@dataclass
class Part:
    """A per-item call. `fetch(work)` runs in a worker thread and returns the body."""

    name: str
    tables: tuple[str, ...]
    fetch: Callable[[Work], Any]
    not_found: NotFound = NotFound.NONE
    judge: Callable[[Work, Any], Ready] | None = None  # default: every body is READY
    priority: int = 0  # lower first, when the entity orders its work
    retry_first: timedelta = RETRY_FIRST  # a part not ready or failed is tried again after this…
    retry_cap: timedelta = RETRY_CAP  # …doubling up to this
    # the version a body is fetched for (default: the record's version), e.g. a segment
    # count, so that a rename does not fetch the transcript again
    version: Callable[[dict], str] | None = None
    # True: a version of the record that does not want this part (its stage runs again at
    # the vendor) forgets that it was fetched, so the next version that wants it fetches it
    # again, even for the same part version
    rearm: bool = False
    # the content of a body that matters (e.g. without signed URLs): a body whose digest
    # equals the one last loaded for the record loads nothing (the part is done)
    digest: Callable[[Any], str] | None = None
    # called in the worker when the call was refused (Action.STOP: a rate limit, a quota,
    # the run's budget), to give back what `fetch` reserved (a quota unit, a credit)
    refused: Callable[[Work], None] | None = None


@dataclass
class Entity:
    """A vendor list and what hangs off each of its records."""

    name: str  # the ledger's name for it
    key: Callable[[dict], str | None]
    version: Callable[[dict], str]
    day: Callable[[dict], str | None] = lambda item: None
    # the account/organization of a record, where a source reads several (deletions are
    # checked per group: a group whose listing showed nothing marks nothing)
    group: Callable[[dict], str | None] = lambda item: None
    # which parts this version of the record owes, and whether the vendor is still busy with it
    wants: Callable[[dict], tuple[Sequence[str], bool]] = lambda item: ((), False)
    table: str | None = None  # the list rows' table (None: the list only drives parts)
    row: Callable[[dict], dict | None] = lambda item: item
    marked_table: str | None = None  # whose rows get `deleted_at` (default: `table`)
    key_column: str = "id"
    parts: tuple[Part, ...] = ()
    # list everything first, then fetch by part priority, newest first (a record's parts of
    # different priorities are fetched each in its turn: all transcripts, then all insights)
    ordered: bool = False
    batch: int = DEFAULT_BATCH
    # the part that asks for one known record by id, where the API has such a call: its body
    # is the record as listed plus its details, so a record this run did not list is booked
    # from it like a listed item (version, day, waiting, what it owes), and a body for a
    # version already done loads nothing. Records
    # still waiting that this run's listing did not show are asked for with it; on a complete
    # sweep, so are the known records it no longer lists, and the part's 404
    # (`NotFound.DELETED`) confirms each deletion instead of the list alone. A complete
    # listing that shows nothing while records are known asks for none of them, and fetches
    # no backlog: a wrong account is likelier than everything deleted.
    lookup: str | None = None
    # the record of another entity this one hangs off (a report's transcript), kept in the
    # ledger; `parent_changed(ids)` is told the parents that gained a record (once its page
    # is handed over) or lost one (deleted) in this run
    parent: Callable[[Any], str | None] = lambda item: None
    parent_changed: Callable[[set[str]], None] | None = None
    # each group reads with its own credential (an account's key): a part refused (a scope
    # error) for one group is refused for that group only; False: for every record
    scopes_per_group: bool = False

    @property
    def marks_table(self) -> str | None:
        return self.marked_table or self.table

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)


class Listing:
    """Which pages a run reads, and what they cover. Subclass per vendor strategy."""


    sweep: bool = False  # a complete listing of the whole range: deletions may be checked
    stable: bool = True  # set False when the list moved while it was paged
    timed: bool = True  # sweeps come every `sweep_interval_hours`: remember when one ended
    stopped: str | None = None  # why the run stopped, when it did (set before `finished`)

    def pages(self) -> Iterator[list]:
        raise NotImplementedError

    def by_group(self) -> Iterator[tuple[str | None, Iterator[list]]]:
        """The pages, group by group (account, organization), for a listing that reads several
        with their own credentials: a group whose credential may not list the entity (a scope
        error) is skipped, named in the report, and the other groups are still read (and
        checked for deletions). Default: one group, `pages()`."""
        yield None, self.pages()

    def covers(self, record_id: str, entry: dict) -> bool:
        """True when a known record lies in the range this listing read (so not seeing it
        in a complete sweep means it was deleted)."""
        return True

    def reaches(self, record_id: str, entry: dict) -> bool:
        """True when this run may fetch the parts a known record still owes from earlier
        runs (e.g. False for an organization not selected this run: they wait for it)."""
        return True

    def finished(self, complete: bool) -> None:
        """Called once the pages are read (`complete`) or cut short: advance cursors here."""


class SnapshotListing(Listing):
    """An endpoint that answers everything at once (no paging, no filter).

    Every run reads it whole, so every run may check deletions (`deletions=False` for
    lists that only show a recent stretch, e.g. the last 7 days of deliveries)."""

    timed = False  # every run reads it whole: nothing to remember

    def __init__(self, fetch: Callable[[], list], *, deletions: bool = True,
                 covers: Callable[[str, dict], bool] | None = None) -> None:
        self.fetch, self.sweep = fetch, deletions
        self._covers = covers

    def pages(self) -> Iterator[list]:
        yield self.fetch()

    def covers(self, record_id: str, entry: dict) -> bool:
        return self._covers(record_id, entry) if self._covers else True


# ---------------------------------------------------------------------- what flows to the tables
@dataclass
class ListedRows:
    rows: list[dict]
    entity: str | None = None  # whose rows (a chained feed carries several entities)


@dataclass
class Fetched:
    work: Work
    bodies: dict[str, Any]  # part -> body, READY parts only


@dataclass
class FetchedBatch:
    items: list[Fetched]
    entity: str | None = None


@dataclass
class Marks:
    table: str
    # records whose rows this run yields: their stored rows are not the ones loading now,
    # so their marks are handed over by the next run, when these rows are stored
    later: frozenset[str] = frozenset()
    entity: str | None = None


# ---------------------------------------------------------------------- the run
@dataclass
class RunState:
    """What one run of one entity decided, for the report and the sweep."""

    seen: set[str] = field(default_factory=set)
    submitted: set[str] = field(default_factory=set)
    stopped: str | None = None
    listing_complete: bool = False
    fetched: int = 0
    disabled: set[tuple[str, str | None]] = field(default_factory=set)  # (part, group) refused (scope)
    groups_seen: set[str] = field(default_factory=set)
    groups_skipped: set[str] = field(default_factory=set)  # groups whose listing was refused (scope)
    backed_off: set[str] = field(default_factory=set)  # records given a back-off this run
    skipped: bool = False  # the listing was refused (scope, plan): its tables are skipped
    rows_yielded: set[str] = field(default_factory=set)  # records whose list rows this run loads
    checkpoint: bool = False  # stopped at the run's checkpoint (`checkpoint_items`): more is owed


class Engine:
    """Runs one entity for one source run; `feed()` is the dlt resource that does the work."""

    def __init__(self, entity: Entity, listing: Callable[[EntityLedger], Listing], *,
                 client: Any, report: RunReport, now: Callable[[], datetime],
                 concurrency: int | None = None, selected: Callable[[], set[str]] | None = None,
                 before: Callable[[], bool] | None = None, after: Callable[[], None] | None = None,
                 checkpoint_items: int | None = None) -> None:
        self.entity, self.make_listing = entity, listing
        # records fetched per run, counted across the source's engines (on the report); 0: no limit
        self.checkpoint_items = checkpoint_items_setting(checkpoint_items)
        self.client, self.report, self.now_fn = client, report, now
        self.concurrency = concurrency or client.settings.concurrency
        self.selected_fn = selected
        self.before = before  # runs first; False: nothing to do this run
        self.after = after  # runs last, once everything was yielded (e.g. to save a counter)
        self.selected: set[str] = set()  # the tables dlt loads this run (known once the feed runs)
        self.wanted_parts: set[str] = set()  # the parts those tables need
        self._pages: deque = deque()
        self.run = RunState()
        self._now: datetime | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- helpers
    @property
    def now(self) -> datetime:
        """The run's "now", on the API's clock where the source has one; read lazily, so a
        listing's own answer may set that clock first."""
        if self._now is None:
            self._now = self.now_fn()
        return self._now

    def _selected(self) -> set[str]:
        if self.selected_fn is not None:
            return self.selected_fn()
        try:
            return set(dlt.current.source().selected_resources)
        except Exception:  # noqa: BLE001 - outside a dlt run (tests): everything
            tables = {self.entity.table} | {t for p in self.entity.parts for t in p.tables}
            return {t for t in tables if t}

    def _tables(self) -> list[str]:
        tables = [self.entity.table, *(t for p in self.entity.parts for t in p.tables)]
        return sorted({t for t in tables if t})

    def stop(self, why: str) -> None:
        with self._lock:
            if self.run.stopped is None or self.run.checkpoint:  # a refusal outranks a checkpoint
                self.run.stopped, self.run.checkpoint = why, False
                self.report.more_to_do = False  # another run right away would be refused too
                self.report.warn(f"{self.entity.name}: stopped: {why}")
        self._halt.set()

    @property
    def halted(self) -> bool:
        return self._halt.is_set()

    def _checkpoint(self, *, halt: bool) -> None:
        """The run's checkpoint is reached: stop like a budget stop (what was fetched loads,
        what is owed stays in the ledger), without a warning, and say that more is owed.
        `halt`: the calls in flight are not sent either (another entity reached it)."""
        why = (f"checkpoint reached ({self.checkpoint_items} records fetched per load, "
               "checkpoint_items); the next run continues")
        with self._lock:
            if self.run.stopped is None:
                self.run.stopped, self.run.checkpoint = why, True
                self.report.more_to_do = True
        if halt:
            self._halt.set()

    def _within_checkpoint(self) -> bool:
        """True when one more record may be sent this run (and counts it): at most
        `checkpoint_items` records' calls are sent per run, across the source's entities."""
        if not self.checkpoint_items or self.halted:
            return not self.halted
        if self.run.checkpoint:
            return False
        if self.report.more_to_do:  # another entity of this source reached it
            self._checkpoint(halt=True)
            return False
        if self.report.items >= self.checkpoint_items:
            self._checkpoint(halt=False)  # the calls in flight complete and load with this run
            return False
        self.report.count_item()
        return True

    # ---------------------------------------------------------------- the feed
    def feed(self) -> Iterator[Any]:
        """Lists, loads changed rows, fetches owed parts, marks deletions; yields batches
        for the table transformers.

        The listing is a lazy generator of owed work that feeds the fan-out, so list pages
        and per-item calls overlap and a run cut short has made progress on both. Each page's
        rows are yielded, and its versions written to the ledger, before any result of its
        work is settled; a part is settled in the ledger after its rows are yielded."""
        entity = self.entity
        if not {entity.table, entity.marks_table, *(t for p in entity.parts for t in p.tables)} & self._selected():
            return  # none of its tables is loaded this run (an entity of a chained feed)
        if self.checkpoint_items and self.report.more_to_do:  # an earlier entity reached the checkpoint
            self.report.wait(entity.name, "not read this run (the run's checkpoint was reached); the next run reads it")
            return
        if self.before is not None and not self.before():
            return
        ledger = Ledger(dlt.current.source_state())
        book = ledger.entity(self.entity.name)
        book.feeds(self._tables())
        selected = self.selected = self._selected()
        wanted_parts = self.wanted_parts = {p.name for p in self.entity.parts if set(p.tables) & selected}
        load_rows = self.entity.table in selected
        try:
            listing = self.make_listing(book)
        except RateLimitError as exc:  # planning needed a call (e.g. the API's clock) that was refused
            self.stop(exc.message)
            self._report_left(book, wanted_parts, None)
            return
        pages: deque[tuple[list[dict], list[tuple]]] = deque()
        self._pages = pages  # bodies of the lookup part queue their bookings here too

        def drain() -> Iterator[Any]:
            while pages:
                rows, versions = pages.popleft()
                if rows:
                    yield ListedRows(rows, self.entity.name)
                self._record_versions(versions, book, ledger, load_rows)

        def work() -> Iterator[Work]:
            yield from self._list(listing, book, ledger, load_rows, wanted_parts, pages)
            if not self.halted and not self.run.checkpoint and not self._listed_nothing(book):
                yield from self._lookups(listing, book, wanted_parts)
                yield from self._backlog(book, wanted_parts, listing)

        if not wanted_parts:  # nothing to fetch: each page is handed over as soon as it is read
            for _ in self._list(listing, book, ledger, load_rows, wanted_parts, pages, ticks=True):
                yield from drain()
        elif self.entity.ordered:  # everything listed first, then fetched by priority
            queued: list[Work] = []
            for item in work():
                queued.append(item)
                yield from drain()
            yield from drain()
            yield from self._fan_out(self._ordered(queued), book, ledger, drain)
        else:
            yield from self._fan_out(work(), book, ledger, drain)
        yield from drain()
        if self.run.listing_complete and listing.sweep:
            self._check_deletions(listing, book, ledger)
        listing.stopped = self.run.stopped
        listing.finished(self.run.listing_complete)
        # a sweep whose lookups were left for after the checkpoint is not done yet
        lookups_left = self.run.checkpoint and self.entity.lookup in wanted_parts
        if self.run.listing_complete and listing.sweep and listing.timed and not lookups_left:
            book.swept(self.now)
        if self._now is not None:
            ledger.prune_marks(self.now)
        marks_table = self.entity.marks_table
        if marks_table and marks_table in selected and ledger.marks(marks_table):
            yield Marks(marks_table, frozenset(self.run.rows_yielded), self.entity.name)
        self._report_left(book, wanted_parts, listing)
        if self.after is not None:
            self.after()

    def _record_versions(self, versions: list[tuple], book: EntityLedger, ledger: Ledger,
                         load_rows: bool) -> None:
        added: set[str] = set()
        for record_id, version, day, parts, waiting, group, rearm, parent in versions:
            if parent is not None and record_id not in book:
                added.add(parent)
            book.see(record_id, version, day, parts=parts, waiting=waiting, loaded=load_rows, group=group,
                     forget=rearm, parent=parent)
        self._parents_changed(added)
        if self.entity.marks_table and load_rows:
            ledger.unmark(self.entity.marks_table, (v[0] for v in versions))  # listed: alive

    def _list(self, listing: Listing, book: EntityLedger, ledger: Ledger, load_rows: bool,
              wanted_parts: set[str], pages: deque, ticks: bool = False) -> Iterator[Work | None]:
        """Reads the listing's pages: queues each page's changed rows and versions in
        `pages`, and yields the work they owe (and None after each page, with `ticks`)."""
        entity = self.entity
        marks = ledger.marks(entity.marks_table) if entity.marks_table else {}
        try:
            for group, group_pages in listing.by_group():
                try:
                    for page in group_pages:
                        rows: list[dict] = []
                        versions: list[tuple[str, str, str | None, dict[str, str], bool, str | None, tuple,
                                             str | None]] = []
                        owed: list[Work] = []
                        for item in page:
                            seen = self._see(item, book, marks, load_rows, wanted_parts, rows, versions, owed)
                            if seen is not None:
                                self.run.seen.add(seen)
                        pages.append((rows, versions))
                        yield from owed
                        if ticks:
                            yield None
                except ScopeError as exc:
                    if group is None:
                        raise
                    self.run.groups_skipped.add(str(group))  # the other groups are still read
                    self._skip_listing(exc, str(group))
            self.run.listing_complete = True
        except RateLimitError as exc:  # our budget, or a wait too long: the listing is cut
            self.stop(exc.message)
        except ScopeError as exc:
            self.run.skipped = True
            self._skip_listing(exc, None)

    def _skip_listing(self, exc: ScopeError, group: str | None) -> None:
        entity = self.entity
        tables = [t for t in [entity.table, *(t for p in entity.parts for t in p.tables)] if t]
        whose = f"the credential of {group}" if group is not None else "the credential"
        why = (f"the token lacks the '{exc.scope}' scope" if getattr(exc, "scope", None)
               else f"{whose} may not list {entity.name}: {exc.message}")
        for table in tables:
            self.report.skip(table, why)

    def _see(self, item: Any, book: EntityLedger, marks: dict[str, str], load_rows: bool,
             wanted_parts: set[str], rows: list[dict], versions: list, work: list[Work],
             *, again: bool = False) -> str | None:
        entity = self.entity
        record_id = shape_or_none(self.report, entity.name, "(no id)", entity.key, item)
        if not record_id:
            self.report.bad_record(entity.table or entity.name, excerpt(item),
                                   "listed without a readable id", loaded=False)
            return None
        if record_id in self.run.seen and not again:
            return None  # listed twice: the list moved while it was paged
        version = shape_or_none(self.report, entity.table or entity.name, record_id, entity.version, item)
        if version is None:
            return record_id
        day = shape_or_none(self.report, entity.table or entity.name, record_id, entity.day, item)
        group = shape_or_none(self.report, entity.table or entity.name, record_id, entity.group, item)
        if group is not None:
            self.run.groups_seen.add(str(group))
        plan = shape_or_none(self.report, entity.table or entity.name, record_id, entity.wants, item)
        parts, waiting = plan if plan is not None else ((), False)
        entry = book.get(record_id) or {}
        if load_rows and (entry.get("version") != version or record_id in marks):
            row = shape_or_none(self.report, entity.table, record_id, entity.row, item)
            if row is not None:
                rows.append({**row, "deleted_at": None} if record_id in marks else row)
                self.run.rows_yielded.add(record_id)
        part_versions = {}
        for name in parts:
            part = next((p for p in entity.parts if p.name == name), None)
            if part is not None:
                pv = shape_or_none(self.report, entity.table or entity.name, record_id,
                                   part.version, item) if part.version else version
                if pv is not None:
                    part_versions[name] = str(pv)
        rearm = tuple(p.name for p in entity.parts if p.rearm and p.name not in parts) \
            if plan is not None else ()
        group = str(group) if group is not None else None
        parent = shape_or_none(self.report, entity.table or entity.name, record_id, entity.parent, item)
        versions.append((record_id, version, day, part_versions, waiting, group, rearm,
                         str(parent) if parent else None))
        done = entry.get("done") or {}
        owed = {p: v for p, v in part_versions.items() if p in wanted_parts and done.get(p) != v
                and not book.covered(record_id, p, v, self._wanted_tables(p))}
        backing_off = entry.get("check_at") and owed.items() <= (entry.get("owed") or {}).items() \
            and parse_instant(entry["check_at"]) > self.now
        if owed and not self.halted and not backing_off:
            self.run.submitted.add(record_id)
            work.append(Work(record_id, owed, item, day, group))
        return record_id

    def _backlog(self, book: EntityLedger, wanted_parts: set[str], listing: Listing) -> list[Work]:
        """Parts owed from earlier runs by records this run's listing did not show."""
        out = []
        for record_id, owed in book.due(self.now):
            if record_id in self.run.submitted:
                continue
            parts = {p: v for p, v in owed.items() if p in wanted_parts
                     and not book.covered(record_id, p, v, self._wanted_tables(p))}
            entry = book.get(record_id) or {}
            if parts and listing.reaches(record_id, entry):
                out.append(Work(record_id, parts, None, entry.get("day"), entry.get("group")))
        return out

    def _listed_nothing(self, book: EntityLedger) -> bool:
        """An entity with a lookup whose complete listing showed nothing while records are
        known: its per-item answers about them are not trusted this run."""
        if self.entity.lookup is None or not self.run.listing_complete or self.run.seen or not len(book):
            return False
        self.report.warn(f"{self.entity.name}: the API listed nothing while {len(book)} are known: refusing "
                         "to mark any as deleted or to ask for them (check the credential's account)")
        return True

    def _lookups(self, listing: Listing, book: EntityLedger, wanted_parts: set[str]) -> list[Work]:
        """Known records the complete listing did not show, asked for by id (the entity's
        lookup part, first, with what else they owe): those still waiting, and on a sweep
        those it covers (a 404 confirms the deletion)."""
        name = self.entity.lookup
        if name is None or name not in wanted_parts or not self.run.listing_complete:
            return []
        sweep = listing.sweep
        out = []
        for record_id in list(book.ids()):
            entry = book.get(record_id) or {}
            if record_id in self.run.seen or record_id in self.run.submitted:
                continue
            if entry.get("check_at") and parse_instant(entry["check_at"]) > self.now:
                continue  # backing off
            group = entry.get("group")
            listed_any = bool(self.run.seen) if group is None else group in self.run.groups_seen
            if not listed_any or not listing.reaches(record_id, entry):
                continue
            if entry.get("waiting") or (sweep and listing.covers(record_id, entry)):
                owed = {p: v for p, v in (entry.get("owed") or {}).items() if p in wanted_parts
                        and not book.covered(record_id, p, v, self._wanted_tables(p))}
                version = owed.pop(name, None) or (entry.get("done") or {}).get(name) or entry.get("version") or ""
                self.run.submitted.add(record_id)
                out.append(Work(record_id, {name: version, **owed}, None, entry.get("day"), group))
        return out

    def _relist(self, work: Work, name: str, body: Any, book: EntityLedger) -> tuple[Ready, str]:
        """A body of the lookup part is the record itself. A record this run did not list is
        booked from it like a listed item (its list row queued when its version moved).
        READY with the version the body is for; NONE when that version was done already, or
        owes no such part (still waiting)."""
        if work.item is None:
            rows: list[dict] = []
            versions: list[tuple] = []
            load_rows = self.entity.table in self.selected
            self._see(body, book, {}, load_rows, self.wanted_parts, rows, versions, [], again=True)
            if not versions or versions[0][0] != work.record_id:
                return Ready.READY, work.parts[name]  # not readable as the record: loaded as fetched
            self._pages.append((rows, versions))
            stands_for = versions[0][3].get(name)
            if stands_for is None:
                return Ready.NONE, work.parts[name]
        else:  # listed, and booked by the listing: only which version the body is for
            part = self.entity.part(name)
            stands_for = shape_or_none(self.report, part.tables[0] if part.tables else name, work.record_id,
                                       part.version, body) if part.version else work.parts[name]
            if stands_for is None:
                return Ready.READY, work.parts[name]
            stands_for = str(stands_for)
        done = ((book.get(work.record_id) or {}).get("done") or {}).get(name)
        return (Ready.NONE if done == stands_for else Ready.READY), stands_for

    def _parents_changed(self, parents: set[str]) -> None:
        if parents and self.entity.parent_changed is not None:
            self.entity.parent_changed(parents)

    def _ordered(self, work: list[Work]) -> list[Work]:
        if not self.entity.ordered:
            return work
        priority = {p.name: p.priority for p in self.entity.parts}
        split: list[Work] = []
        for w in work:  # one work per priority a record owes, each fetched in its turn
            levels = sorted({priority.get(p, 0) for p in w.parts})
            split.extend([w] if len(levels) <= 1 else [
                Work(w.record_id, {p: v for p, v in w.parts.items() if priority.get(p, 0) == level},
                     w.item, w.day) for level in levels])
        # newest first within a priority (sorts are stable): those are what users look at
        newest_first = sorted(split, key=lambda w: w.day or "", reverse=True)
        return sorted(newest_first, key=lambda w: min(priority.get(p, 0) for p in w.parts))

    # ---------------------------------------------------------------- fetching
    def _fetch(self, work: Work) -> dict[str, Any]:
        """Every owed part of one record, in a worker thread: {part: body or exception}."""
        out: dict[str, Any] = {}
        for name in work.parts:
            if self.halted:
                break
            if (name, self._scope_group(work)) in self.run.disabled:
                continue  # refused (for every record, or for this record's group)
            part = self.entity.part(name)
            try:
                out[name] = part.fetch(work)
            except Exception as exc:  # noqa: BLE001 - settled by ERROR_ACTIONS
                out[name] = exc
                if isinstance(exc, ScopeError):  # the queued calls of this part (or group) are not sent
                    self.run.disabled.add((name, self._scope_group(work)))
                if isinstance(exc, RateLimitError):
                    if part.refused is not None:
                        part.refused(work)
                    self.stop(exc.message)
                    break
                if isinstance(exc, NotFoundError) and part.not_found is NotFound.DELETED:
                    break  # the record is gone: its other parts are moot
        return out

    def _scope_group(self, work: Work) -> str | None:
        return work.group if self.entity.scopes_per_group else None

    def _fan_out(self, work: Iterable[Work], book: EntityLedger, ledger: Ledger,
                 drain: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        def pending() -> Iterator[Work]:
            for w in work:
                if self._within_checkpoint():  # once stopped, the listing goes on but nothing is sent
                    yield w

        batch: list[Fetched] = []
        settled: list[tuple[str, str, str, str | None]] = []
        for w, result in map_ordered(self._fetch, pending(), self.concurrency):
            yield from drain()  # the pages that owed this work were listed before it
            if isinstance(result, BaseException):
                raise result
            bodies = self._settle(w, result, book, ledger, settled)
            if bodies:
                batch.append(Fetched(w, bodies))
            if len(batch) >= self.entity.batch:
                yield FetchedBatch(batch, self.entity.name)
                self._apply(settled, book)
                batch, settled = [], []
        if batch:
            yield FetchedBatch(batch, self.entity.name)
        self._apply(settled, book)

    def _wanted_tables(self, part: str) -> set[str]:
        """The tables of `part` this run loads."""
        return set(self.entity.part(part).tables) & self.selected

    def _apply(self, settled: list[tuple[str, str, str, str | None]], book: EntityLedger) -> None:
        self.report.settled += len(settled)  # the feed's own thread: no other writer
        for record_id, part, version, digest in settled:
            book.settle(record_id, part, version, digest=digest, tables=self._wanted_tables(part),
                        all_tables=self.entity.part(part).tables)

    def _settle(self, work: Work, result: dict[str, Any], book: EntityLedger, ledger: Ledger,
                settled: list[tuple[str, str, str, str | None]]) -> dict[str, Any]:
        """Decides each part's fate; returns the bodies to load. Parts done are settled in
        the ledger only after their rows are yielded (`settled`)."""
        bodies: dict[str, Any] = {}
        for name, value in result.items():
            part = self.entity.part(name)
            version = work.parts[name]
            if not isinstance(value, BaseException):
                verdict = Ready.READY
                if part.judge is not None:
                    verdict = shape_or_none(self.report, part.tables[0] if part.tables else name,
                                            work.record_id, part.judge, work, value) or Ready.NONE
                if verdict is Ready.READY and name == self.entity.lookup:
                    owed, (verdict, version) = version, self._relist(work, name, value, book)
                    if version != owed:  # the body answers what was owed, for the version it is for
                        settled.append((work.record_id, name, owed, None))
                digest = None
                if verdict is Ready.READY and part.digest is not None:
                    digest = shape_or_none(self.report, part.tables[0] if part.tables else name,
                                           work.record_id, part.digest, value)
                    if digest is not None and digest == book.digest(work.record_id, name):
                        verdict = Ready.NONE  # the same content as loaded last: nothing to load
                if verdict is Ready.READY:
                    bodies[name] = value
                    settled.append((work.record_id, name, version, digest))
                    self.run.fetched += 1
                elif verdict is Ready.NOT_READY:
                    self._back_off(book, work.record_id, part)
                else:
                    settled.append((work.record_id, name, version, None))
                continue
            action = action_for(value)
            if action is None or action is Action.ABORT:
                raise value
            if action is Action.SKIP:
                self.run.disabled.add((name, self._scope_group(work)))
                scope = getattr(value, "scope", None)
                for table in part.tables:
                    self.report.skip(table, f"the credential lacks the '{scope}' scope ({value.message})"
                                     if scope else value.message)
            elif action is Action.STOP:
                pass  # stays owed; `stop()` was called by the worker
            elif action is Action.NOT_FOUND:
                if part.not_found is NotFound.DELETED:
                    gone = book.forget(work.record_id) or {}
                    self._parents_changed({gone["parent"]} if gone.get("parent") else set())
                    if self.entity.marks_table:
                        ledger.mark_deleted(self.entity.marks_table, [work.record_id], self.now)
                    return {}
                if part.not_found is NotFound.NOT_READY:
                    self._back_off(book, work.record_id, part)
                else:
                    settled.append((work.record_id, name, version, None))
            elif action is Action.RETRY:
                self.report.warn(f"{self.entity.name} {work.record_id}: {name} not loaded, tried again "
                                 f"later: {getattr(value, 'message', value)}")
                self._back_off(book, work.record_id, part)
            elif action is Action.BAD_RECORD:
                table = part.tables[0] if part.tables else self.entity.name
                self.report.bad_record(table, work.record_id, f"{name}: could not be read "
                                       f"({type(value).__name__}: {value})", loaded=False)
                settled.append((work.record_id, name, version, None))
        return bodies

    def _back_off(self, book: EntityLedger, record_id: str, part: Part) -> None:
        """Once per record and run, by the policy of its first part that is owed again: a
        record with two parts not ready is not backed off twice as long, and one whose
        first part failed (say, retried next run) is not held back by a later part's wait."""
        if record_id in self.run.backed_off:
            return
        self.run.backed_off.add(record_id)
        book.retry_later(record_id, self.now, first=part.retry_first, cap=part.retry_cap)

    # ---------------------------------------------------------------- deletions
    def _check_deletions(self, listing: Listing, book: EntityLedger, ledger: Ledger) -> None:
        """A complete, stable sweep: known records it did not show are deleted, unless it
        showed nothing at all (a wrong account is likelier than everything deleted)."""
        table = self.entity.marks_table
        if not table or self.entity.lookup in self.wanted_parts:
            return  # nothing to mark, or each deletion is confirmed by a lookup (`_lookups`)
        if not listing.stable:
            self.report.warn(f"{self.entity.name}: the list moved while the sweep read it; "
                             "deletions are checked at the next sweep")
            return
        by_group: dict[str | None, set[str]] = {}  # the known records the sweep covers, by group
        for rid, entry in book.entries():
            if listing.covers(rid, entry):
                by_group.setdefault(entry.get("group"), set()).add(rid)
        gone: set[str] = set()
        for group, known in sorted(by_group.items(), key=lambda kv: str(kv[0])):
            if group in self.run.groups_skipped:
                continue  # its credential may not list it: nothing is known about it this run
            listed_any = bool(self.run.seen) if group is None else group in self.run.groups_seen
            if not listed_any:
                where = "" if group is None else f" for {group}"
                self.report.warn(f"{self.entity.name}: the sweep listed nothing{where} while {len(known)} "
                                 "are known: refusing to mark any as deleted (check the credential's account)")
                continue
            gone |= known - self.run.seen
        if not gone:
            return
        parents = set()
        for record_id in gone:
            parents.add((book.forget(record_id) or {}).get("parent"))
        self._parents_changed(parents - {None})
        new = ledger.mark_deleted(table, gone, self.now)
        if new:
            self.report.warn(f"{table}: {new} no longer listed by the vendor; marked with deleted_at")

    # ---------------------------------------------------------------- the report
    def _report_left(self, book: EntityLedger, wanted_parts: set[str], listing: Listing | None) -> None:
        owed = sum(1 for _, parts in book.owed() if set(parts) & wanted_parts)
        self.report.owed += owed
        waiting = sum(1 for _ in book.waiting())
        notes = []
        if not self.run.listing_complete and not self.run.skipped:  # a skip says why itself
            notes.append("the listing was cut short; the next run reads on")
        if owed:
            notes.append(f"{owed} {self.entity.name} owe details "
                         f"({self.run.stopped or 'not ready yet, or their call failed; tried again later'})")
        if waiting:
            notes.append(f"{waiting} are still being processed by the vendor")
        if notes:
            self.report.wait(self.entity.name, "; ".join(notes))


# ---------------------------------------------------------------------- dlt resources
@dataclass
class TableSpec:
    """A table fed by the engine: the list rows (`part=None`) or a part's bodies."""

    name: str
    part: str | None = None
    # rows of one fetched record (part tables), or None to skip it
    shape: Callable[[Fetched], Any] | None = None
    # a batch's rows to what is yielded (e.g. an Arrow table for transcript segments); for
    # list tables too (their rows are the listed rows)
    finish: Callable[[list[dict]], Any] | None = None
    # the marked rows (read back from the destination, as stored: flattened, typed, `deleted_at`
    # set) to what is yielded, for a table loaded as Arrow (dict rows would add dlt's own
    # `_dlt_id`/`_dlt_load_id` columns to it); None: yielded as read back
    finish_marked: Callable[[list[dict]], Any] | None = None
    hints: dict[str, Any] = field(default_factory=dict)


def entity_resources(engine: Engine, tables: Sequence[TableSpec], report: RunReport) -> list[Any]:
    """The feed (a resource that is not a table) and one transformer per table."""
    return chained_resources(f"{engine.entity.name}_feed", [(engine, tables)], report)


def chained_resources(name: str, runs: Sequence[tuple[Engine, Sequence[TableSpec]]],
                      report: RunReport) -> list[Any]:
    """One feed that runs several entities one after the other, and one transformer per
    table: for entities where one's run changes what the next owes (reports before the
    transcripts whose `report_ids` a new report makes stale). An entity none of whose
    tables is selected makes no call."""
    handover = Handover()
    names = {spec.name for _, tables in runs for spec in tables}

    def selected_tables() -> int:
        """The transformers dlt forks each item to: this feed's selected tables."""
        return len(names & set(dlt.current.source().selected_resources))

    def feed_items() -> Iterator[Any]:
        with fewer_collections(), packed_on_exit([engine.entity.name for engine, _ in runs]):
            for engine, _ in runs:
                yield from handed_over_one_at_a_time(engine.feed(), handover, selected_tables)

    feed = dlt.resource(feed_items, name=name, selected=False)
    out = [feed]
    for engine, tables in runs:
        for spec in tables:
            out.append(_table_transformer(feed, spec, engine.entity, report, handover))
    return out


# how long, and over how many of dlt's turns, a feed waits for its last item to reach its
# tables before it yields the next one anyway (and stops waiting for the rest of the run):
# only a table transformer that never takes it makes it wait that long. Both, so that a turn
# that blocks (another feed waiting on the network) does not count as waiting
HANDOVER_WAIT_SECONDS = 1.0
HANDOVER_TURNS = 100
handover_timeouts = 0  # waits that ran out, in this process (the tests hold it at 0 for the sources)


class Handover:
    """A feed's last item and how many of its table transformers are done with it."""

    def __init__(self) -> None:
        self.item: Any = None
        self.done = 0

    def done_with(self, item: Any) -> None:
        """A transformer has yielded its rows of `item` (called as its generator ends)."""
        if item is self.item:
            self.done += 1


def handed_over_one_at_a_time(items: Iterator[Any], handover: Handover,
                              tables: Callable[[], int]) -> Iterator[Any]:
    """Yields each item, then None until `tables()` transformers are done with it.

    dlt forks a feed's item to its transformers through generators that it takes in turns
    with the feed (round robin), so without this the feed runs ahead of its tables and a
    checkpoint's batches pile up: meemo's peak at 2,000 meetings was 294–299 MB, 273–288 MB
    with this (README, Performance). dlt skips a None and goes on with the forks. The
    workers keep fetching meanwhile (`map_ordered`'s window)."""
    waiting, wanted = True, None
    for item in items:
        handover.item, handover.done = item, 0
        yield item
        del item
        wanted = tables() if wanted is None else wanted
        deadline, turns = time.monotonic() + HANDOVER_WAIT_SECONDS, 0
        while waiting and handover.done < wanted:
            turns += 1
            if turns > HANDOVER_TURNS and time.monotonic() > deadline:
                global handover_timeouts
                handover_timeouts += 1
                waiting = False
                break
            yield None
        handover.item = None  # done with: nothing here keeps it alive while the next is made


_live_lock = threading.Lock()
_live: dict[int, list[str]] = {}  # id(source state) -> entities whose feed runs (dlt interleaves feeds)


@contextmanager
def packed_on_exit(entities: list[str]) -> Iterator[None]:
    """When a feed ends, however it ends, the ledger's records go back into the state packed
    (`pack_records`), but those of feeds still running: each one's own end packs them."""
    state = dlt.current.source_state()
    key = id(state)
    with _live_lock:
        _live.setdefault(key, []).extend(entities)
    try:
        yield
    finally:
        with _live_lock:
            live = _live.get(key, [])
            for name in entities:
                if name in live:  # (a feed closed late, by the collector, finds its run gone)
                    live.remove(name)
            if not live:
                _live.pop(key, None)
            keep = list(live)
        pack_records(state, keep=keep)


_gc_lock = threading.Lock()
_gc_feeds = 0  # feeds running (dlt may interleave several): the last one out restores
_gc_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raises the collector's gen-0 threshold (`FEED_GC_THRESHOLD`) while feeds run, and puts
    the process's own threshold back when the last one ends (or is closed early)."""
    global _gc_feeds, _gc_saved
    with _gc_lock:
        if _gc_feeds == 0:
            _gc_saved = gc.get_threshold()
            if _gc_saved[0] and _gc_saved[0] < FEED_GC_THRESHOLD:  # 0: disabled by the user
                gc.set_threshold(FEED_GC_THRESHOLD, *_gc_saved[1:])
        _gc_feeds += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_feeds -= 1
            if _gc_feeds == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)
                _gc_saved = None


def _table_transformer(feed: Any, spec: TableSpec, entity: Entity, report: RunReport,
                       handover: Handover) -> Any:
    def rows_of(batch: Any) -> Iterator[Any]:
        try:
            yield from _rows_of(batch)
        finally:
            handover.done_with(batch)

    def _rows_of(batch: Any) -> Iterator[Any]:
        if getattr(batch, "entity", None) not in (None, entity.name):
            return  # another entity's batch (a chained feed)
        if isinstance(batch, Marks):
            if batch.table == spec.name:
                for rows in _marked(spec.name, entity.key_column, batch.later):
                    report.count_marked(spec.name, len(rows))
                    yield spec.finish_marked(rows) if spec.finish_marked else rows
            return
        if spec.part is None:
            if isinstance(batch, ListedRows) and batch.rows:
                yield spec.finish(batch.rows) if spec.finish else batch.rows
            return
        if not isinstance(batch, FetchedBatch):
            return
        out: list[dict] = []
        for fetched in batch.items:
            if spec.part not in fetched.bodies:
                continue
            shaped = shape_or_none(report, spec.name, fetched.work.record_id, spec.shape, fetched)
            if shaped:
                out.extend(shaped)
        if out:
            yield spec.finish(out) if spec.finish else out

    return dlt.transformer(rows_of, data_from=feed, name=spec.name, **spec.hints)


def _marked(table: str, key: str, later: frozenset[str] = frozenset()) -> Iterator[Any]:
    """The stored rows of the marked records, with `deleted_at` set; marks then owed no more
    (but those of `later`)."""
    ledger = Ledger(dlt.current.source_state())
    marks = {record_id: at for record_id, at in ledger.marks(table).items() if record_id not in later}
    if not marks:
        return
    rows = marked_rows(dlt.current.pipeline(), table, key, marks)
    if rows is None:
        return  # the destination could not be read: the marks stay owed for the next run
    if rows:
        yield rows
    ledger.unmark(table, marks)  # found and marked, or never loaded: nothing left to mark
