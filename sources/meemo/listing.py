"""Which pages each meemo list reads in a run, and which known records they cover.

Meetings: the list has no updated-at and filters by whole days (in the vendor's time zone),
so each organization is read with a day cursor: between sweeps, the meetings created since
the newest one already seen (less `OVERLAP_DAYS`), plus, for unfinished meetings created
earlier whose start is now due, the days since the earliest of them started (`start_after`,
`created_before`); those unfinished for over `PENDING_CHASE_DAYS` wait for the sweep. A sweep
(every `sweep_interval_hours`, and an organization's first run) reads the whole list from
`start_date`, which also reveals renames and deletions; one whose list moved while it was
paged marks nothing and is repeated on the next run. Deletions are checked per organization,
only in organizations read whole this run.

Topics and upcoming meetings are one call per organization, read as snapshots
(`PerOrganization`); webhooks and their delivery log are read once per run (`WebhookLog`)
for both tables; usage is read by calendar month.

Cursors (the ledger's `cursor` of each entity; the records are in the ledger):
    meetings:       newest_created {organization: day}; starts {meeting: start day} of the
                    unfinished meetings (where the listing finds them again)
    webhooks:       details_read_at (when every webhook's detail was last read), failures
                    {webhook: the newest failed delivery that made its detail be read}
    webhook_events: newest {webhook: instant of its newest event}
    usage:          read_through {organization: instant of the last complete read}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import dlt

from .._common.engine import Action, Listing, tolerate
from .._common.http import ApiClient
from .._common.ledger import EntityLedger, Ledger, row_hash
from .._common.paginators import NextUrlPaginator
from .._common.records import excerpt, read_instant, read_int
from .._common.report import RunReport
from .._common.timeutil import iso
from . import helpers as h
from .settings import (
    EVENT_LOOKBACK,
    EVENT_RECHECK_MAX,
    MEETINGS,
    OVERLAP_DAYS,
    PENDING_CHASE_DAYS,
    TOPICS,
    UPCOMING,
    UPCOMING_LIMIT,
    USAGE,
    USAGE_DEFAULT_MONTHS,
    WEBHOOK_EVENTS,
    WEBHOOKS,
)

EVENTS = "webhook_events"  # the ledger entity of the delivery log


def tagged(items: Iterable[Any], organization_id: Any) -> list[Any]:
    """Items with the organization they were listed for, where the vendor omits it (items that
    are not objects are passed on, for the engine to name)."""
    return [{**i, "organization_id": i.get("organization_id") or organization_id} if isinstance(i, dict) else i
            for i in items]


def list_all(client: ApiClient, path: str, page_size: int, params: dict | None = None) -> Iterator[list]:
    """Every page of a paginated list (`{"count", "next", "results"}`, or without `next`)."""
    for page in client.paginate(path, paginator=h.DrfPaginator(page_size), items_path="results",
                                params={"size": page_size, **(params or {})}):
        yield page.items


# ---------------------------------------------------------------------- meetings
class MeetingListing(Listing):
    """The meeting lists of the selected organizations, one run."""

    def __init__(self, book: EntityLedger, client: ApiClient, report: RunReport, *, orgs: list[int],
                 now: datetime, start_day: date | None, sweep_interval_hours: float, page_size: int) -> None:
        self.book, self.client, self.report = book, client, report
        self.orgs, self.now, self.start_day, self.page_size = orgs, now, start_day, page_size
        self.selected = {str(o) for o in orgs}
        self.sweep = book.sweep_due(sweep_interval_hours, now)
        self.floor = start_day.isoformat() if start_day else ""
        self.newest: dict[str, str] = dict(book.cursor.get("newest_created") or {})
        self.starts: dict[str, str] = dict(book.cursor.get("starts") or {})
        self.read: set[str] = set()  # organizations whose every range was read this run

    # ---------------------------------------------------------------- planning
    def ranges(self, org: int) -> list[dict[str, Any]]:
        """The list filters this run reads for `org` (whole days, inclusive)."""
        start = self.start_day.isoformat() if self.start_day else None
        newest = self.newest.get(str(org))
        if self.sweep or not newest:
            return [{"created_after": start}]
        a_from = date.fromisoformat(newest) - timedelta(days=OVERLAP_DAYS)
        if self.start_day:
            a_from = max(a_from, self.start_day)
        ranges: list[dict[str, Any]] = [{"created_after": a_from.isoformat()}]
        today = self.now.date().isoformat()
        chase_from = (self.now - timedelta(days=PENDING_CHASE_DAYS)).date().isoformat()
        due, stale = [], 0
        for mid, start_day in self.starts.items():
            entry = self.book.get(mid) or {}
            if entry.get("group") != str(org) or not entry.get("waiting"):
                continue
            if start_day > today or (entry.get("day") or "") >= a_from.isoformat():
                continue  # not started yet, or created within the day cursor's range anyway
            if start_day < chase_from:
                stale += 1
            else:
                due.append(start_day)
        if due:
            ranges.append({"start_after": (date.fromisoformat(min(due)) - timedelta(days=1)).isoformat(),
                           "created_before": (a_from - timedelta(days=1)).isoformat(), "created_after": start})
        if stale:
            self.report.wait(f"meetings/{org}", f"{stale} meetings unfinished for over {PENDING_CHASE_DAYS} "
                                                "days are re-checked by the next sweep")
        return ranges

    # ---------------------------------------------------------------- reading
    def pages(self) -> Iterator[list]:
        for org in self.orgs:
            newest = self.newest.get(str(org))
            with tolerate(Action.SKIP) as refused:
                for params in self.ranges(org):
                    for items in self._pages(org, params):
                        for item in items:
                            if isinstance(item, dict):
                                newest = max(newest or "", h.day_of(item.get("created_at")) or "") or None
                                self._note_start(item)
                        yield items
            if refused.error is not None:
                self.report.warn(f"organization {org}: meetings not loaded: {refused.error}")
                continue
            if newest:  # only once the organization's listing is whole: a cut one may have missed days
                self.newest[str(org)] = newest
            self.read.add(str(org))

    def _pages(self, org: int, params: dict[str, Any]) -> Iterator[list]:
        counts: set[Any] = set()
        with tolerate(Action.NOT_FOUND) as past_the_end:
            for page in self.client.paginate(
                    MEETINGS, paginator=NextUrlPaginator("next"), items_path="results",
                    params={"organization_id": org, "size": self.page_size, **params}):
                body = page.response.body
                counts.add(body.get("count") if isinstance(body, dict) else None)
                yield tagged(page.items, org)
        if past_the_end.error is not None:
            if not counts:
                raise past_the_end.error  # not "Invalid page." of a list that shrank: the list itself
            self.stable = False  # the list shrank while it was paged
        if len(counts) > 1:
            self.stable = False  # the list changed while it was paged

    def _note_start(self, item: dict) -> None:
        mid, start = str(item.get("id")), h.day_of(item.get("start_time"))
        if start and h.unfinished(item):
            self.starts[mid] = start
        else:
            self.starts.pop(mid, None)

    def covers(self, record_id: str, entry: dict) -> bool:
        """Known meetings of organizations read whole this run, created after `start_date`
        (a meeting whose creation day cannot be read is never taken for deleted)."""
        return entry.get("group") in self.read and (entry.get("day") or "") > self.floor

    def reaches(self, record_id: str, entry: dict) -> bool:
        """Calls owed by meetings of organizations not selected this run wait for a run that is."""
        return entry.get("group") is None or entry.get("group") in self.selected

    def finished(self, complete: bool) -> None:
        cursor = self.book.cursor
        cursor["newest_created"] = self.newest
        cursor["starts"] = {mid: d for mid, d in self.starts.items() if (self.book.get(mid) or {}).get("waiting")}
        if self.sweep and not self.stable:
            self.timed = False  # not a sweep to remember: the next run sweeps again
        self._report_transcripts()

    def _report_transcripts(self) -> None:
        """Meetings of older builds whose transcript is not final until their summary is."""
        counts: dict[str, list[int]] = {}  # organization -> [asked again later, once the summary completes]
        for mid in self.book.ids():
            entry = self.book.get(mid) or {}
            if not entry.get("waiting") or entry.get("group") not in self.selected:
                continue
            if (entry.get("owed") or {}).get("transcript") == h.TRANSCRIPT_PENDING and entry.get("tries"):
                counts.setdefault(entry["group"], [0, 0])[0] += 1
            elif (entry.get("done") or {}).get("transcript") == h.TRANSCRIPT_PENDING:
                counts.setdefault(entry["group"], [0, 0])[1] += 1
        for org, (again, later) in sorted(counts.items()):
            self.report.wait(f"transcripts/{org}", f"{again + later} meetings without stage objects have no final "
                             f"transcript yet: {again} answered an empty one and are asked again later, {later} "
                             "are asked again once their summary completes")


# ---------------------------------------------------------------------- one call per organization
class PerOrganization:
    """A list that answers whole, one call per selected organization (topics, upcoming
    meetings), read as a snapshot: every run may check deletions, among the organizations
    whose answer could be compared; records of the others (not selected, refused, cut at a
    limit) are kept as they are."""

    def __init__(self, orgs: Any, read: Callable[[int], tuple[list, bool] | None]) -> None:
        self.orgs, self.read = orgs, read  # read(org): (items, comparable), or None: not read
        self.compared: set[str] = set()
        self.done = False  # set by `read` to end the listing early

    def fetch(self) -> list:
        self.compared, self.done, out = set(), False, []
        for org in self.orgs.ids():
            answer = self.read(org)
            if self.done:
                break
            if answer is not None:
                out += tagged(answer[0], org)
                if answer[1]:
                    self.compared.add(str(org))
        return out

    def covers(self, record_id: str, entry: dict) -> bool:
        return entry.get("group") in self.compared


def topic_lists(client: ApiClient, report: RunReport, orgs: Any) -> PerOrganization:
    def read(org: int) -> tuple[list, bool] | None:
        body: Any = None
        with tolerate(Action.SKIP) as refused:
            body = client.get(TOPICS, {"organization_id": org}).body
        if refused.error is not None:
            report.warn(f"organization {org}: topics not loaded: {refused.error}")
            return None
        return (body if isinstance(body, list) else []), True

    return PerOrganization(orgs, read)


class UpcomingLists(PerOrganization):
    """Upcoming events of the organizations' connected calendars (one call each).

    An event no longer listed whose start has passed took place: its row stays as last seen
    (and the ledger forgets it). One that left the list while its start was still ahead was
    cancelled or moved out of the calendar, and gets `deleted_at`. Only organizations whose
    whole list was read (calendar connected, not cut at the limit) are compared.
    """

    def __init__(self, client: ApiClient, report: RunReport, orgs: Any) -> None:
        super().__init__(orgs, self.read_org)
        self.client, self.report = client, report

    def read_org(self, org: int) -> tuple[list, bool] | None:
        body: Any = None
        with tolerate(Action.NOT_FOUND, Action.SKIP) as failed:
            body = self.client.get(UPCOMING, {"organization_id": org, "limit": UPCOMING_LIMIT}).body
        if failed.action is Action.NOT_FOUND:
            self.report.skip("upcoming_meetings", f"this Meemo build has no calendar/upcoming-meetings/ "
                                                  f"({failed.error})")
            self.done = True
            return None
        if failed.action is Action.SKIP:
            self.report.warn(f"organization {org}: upcoming meetings not loaded: {failed.error}")
            return None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            self.report.warn(f"organization {org}: upcoming meetings in an unknown shape: {excerpt(body, 200)}")
            return None
        if h.flag(body.get("integrated")) is False:
            return None  # no calendar connected: nothing listed, nothing to compare
        return results, len(results) < UPCOMING_LIMIT  # one cut at the limit cannot tell what left it

    def fetch(self) -> list:
        out = super().fetch()
        if not self.done and not self.compared and not out and self.orgs.ids():
            self.report.skip("upcoming_meetings", "no organization has a calendar connected (integrated: false)")
        return out

    def covers(self, record_id: str, entry: dict) -> bool:
        start = read_instant(entry.get("day"))
        return super().covers(record_id, entry) and start is not None and start > self.orgs.clock()


# ---------------------------------------------------------------------- usage
def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def usage_months(read_through: datetime | None, now: datetime, start_day: date | None) -> list[tuple[date, date]]:
    """Calendar months to (re-)read: from the month of the last read's eve to this month."""
    if read_through is not None:
        first = month_start((read_through - timedelta(days=1)).date())
    elif start_day is not None:
        first = month_start(start_day)
    else:
        first = month_start(now.date())
        for _ in range(USAGE_DEFAULT_MONTHS - 1):
            first = month_start(first - timedelta(days=1))
    months, cursor = [], first
    while cursor <= now.date():
        months.append((cursor, next_month(cursor) - timedelta(days=1)))
        cursor = next_month(cursor)
    return months


class UsageListing(Listing):
    """Usage per capability and calendar month: 12 months back on a first run (or from
    `start_date`), then the current month (and the previous one on the first run after it
    closed). No deletions: a month's usage is never withdrawn."""

    def __init__(self, book: EntityLedger, client: ApiClient, report: RunReport, *, orgs: list[int],
                 now: datetime, start_day: date | None) -> None:
        self.book, self.client, self.report = book, client, report
        self.orgs, self.now, self.start_day = orgs, now, start_day
        self.read_through: dict[str, str] = dict(book.cursor.get("read_through") or {})

    def pages(self) -> Iterator[list]:
        for org in self.orgs:
            months = usage_months(read_instant(self.read_through.get(str(org))), self.now, self.start_day)
            whole = True
            for first, last in months:
                body: Any = None
                with tolerate(Action.SKIP) as refused:
                    body = self.client.get(USAGE, {"organization_id": org, "start_date": first.isoformat(),
                                                   "end_date": last.isoformat()}).body
                if refused.error is not None:
                    self.report.warn(f"organization {org}: usage not loaded: {refused.error}")
                    whole = False
                    break
                results = body.get("results") if isinstance(body, dict) else None
                if not isinstance(results, list):
                    self.report.warn(f"usage for organization {org}, {first:%Y-%m}: expected a `results` list, "
                                     f"got {excerpt(body, 200)}; read again next run")
                    whole = False
                    continue
                yield [{**item, "organization_id": item.get("organization_id") or org,
                        "period_start": first.isoformat(), "period_end": last.isoformat()}
                       if isinstance(item, dict) else item for item in results]
            if whole:
                self.read_through[str(org)] = iso(self.now)

    def finished(self, complete: bool) -> None:
        self.book.cursor["read_through"] = self.read_through


def usage_key(row: dict) -> str | None:
    if not isinstance(row, dict) or not row.get("capability_name"):
        return None
    return f"{row['organization_id']}|{row['capability_name']}|{row['period_start']}"


# ---------------------------------------------------------------------- webhooks and their log
class WebhookLog:
    """The webhooks of the selected organizations and their new delivery events, read once
    per run for both tables: the events say which webhooks' failure counts moved.

    Events are listed newest first and change (retries, delivery) for a while after they
    are created, so each log is read back to `EVENT_LOOKBACK` before the newest event seen
    last run, or to the oldest event that was not final then (up to `EVENT_RECHECK_MAX`),
    whichever is older. Events older than that which the ledger does not know are not
    passed on (they were loaded long ago and forgotten).
    """

    def __init__(self, client: ApiClient, report: RunReport, orgs: Any, page_size: int) -> None:
        self.client, self.report, self.orgs, self.page_size = client, report, orgs, page_size
        self.hooks: list[Any] | None = None
        self.events: dict[str, list] = {}  # webhook -> events to pass on
        self.newest: dict[str, datetime] = {}  # webhook -> its newest event (logs read whole)
        self.failures: dict[str, str] = {}  # webhook -> its newest new or changed FAILED event
        self.orgs_read: set[str | None] = set()

    def read(self) -> WebhookLog:
        """Reads the webhook list and every log, once per run (the first caller pays)."""
        if self.hooks is not None:
            return self
        selected = self.orgs.ids()
        wanted = {str(o) for o in selected}
        hooks = []
        for items in list_all(self.client, WEBHOOKS, self.page_size) if selected else []:
            for hook in items:
                if not isinstance(hook, dict) or hook.get("id") is None:
                    shown = h.without_secrets(hook) if isinstance(hook, dict) else hook
                    self.report.bad_record("webhooks", excerpt(shown), "no id: not loaded", loaded=False)
                    continue
                org = hook.get("organization_id")
                if (str(org) in wanted) if org is not None else not self.orgs.wanted:
                    hooks.append(h.without_secrets(hook))
        self.orgs_read = set(wanted) | (set() if self.orgs.wanted else {None})
        book = Ledger(dlt.current.source_state()).entity(EVENTS)
        for hook in hooks:
            with tolerate(Action.NOT_FOUND) as gone:
                self._read_events(hook, book)
            if gone.error is not None:
                continue  # deleted since it was listed
        self.hooks = hooks
        return self

    def _read_events(self, hook: dict, book: EntityLedger) -> None:
        hid = str(hook["id"])
        newest = read_instant((book.cursor.get("newest") or {}).get(hid))
        cutoff = newest - EVENT_LOOKBACK if newest else None
        stop_before = None
        if newest is not None:
            still_open = [read_instant(e.get("day")) for e in (book.get(i) or {} for i in book.ids())
                          if e.get("group") == hid and e.get("waiting")]
            stop_before = min([cutoff, *(d for d in still_open if d and d >= newest - EVENT_RECHECK_MAX)])
        out: list[Any] = []
        for items in list_all(self.client, WEBHOOK_EVENTS, self.page_size, {"webhook_id": hook["id"]}):
            dated = []
            for event in items:
                if not isinstance(event, dict) or event.get("id") is None:
                    out.append(event)  # named by the engine
                    continue
                created = read_instant(event.get("created_at"))
                if created is not None:
                    dated.append(created)
                    newest = created if newest is None or created > newest else newest
                row = {**event, "organization_id": hook.get("organization_id")}
                entry = book.get(str(event["id"]))
                if entry is None and cutoff is not None and created is not None and created < cutoff:
                    continue  # loaded long ago, and forgotten since
                out.append(row)
                if h.event_status(event) == "failed" and (entry is None or entry.get("version") != row_hash(row)):
                    self.failures[hid] = max(self.failures.get(hid, ""), str(event["id"]), key=_id_order)
            newest_first = len(dated) < 2 or dated[0] >= dated[-1]
            if stop_before is not None and newest_first and dated and max(dated) < stop_before:
                break
        self.events[hid] = out
        if newest is not None:
            self.newest[hid] = newest

    def covers(self, group: str | None) -> bool:
        return group in self.orgs_read


def _id_order(value: str) -> tuple[int, str]:
    number = read_int(value)
    return (number if number is not None else -1, value)


class WebhookListing(Listing):
    """The webhook list, whole every run (deletions checked among the selected organizations).

    A webhook's `failure_count` and `last_failure_reason` are only in its detail, read when
    the listing shows it new or changed, when it got new failed deliveries, and for every
    webhook on a sweep: the detail's version (`detail_version`) moves then."""

    sweep = True
    timed = False  # every run reads it whole; the detail sweep's time is in the cursor

    def __init__(self, book: EntityLedger, log: WebhookLog, *, now: datetime, sweep_interval_hours: float) -> None:
        self.book, self.log = book, log.read()
        cursor = book.cursor
        last = read_instant(cursor.get("details_read_at"))
        if last is None or sweep_interval_hours <= 0 or now - last >= timedelta(hours=sweep_interval_hours):
            cursor["details_read_at"] = iso(now)  # every webhook's detail is read again this run
        self.failures: dict[str, str] = {**(cursor.get("failures") or {}), **self.log.failures}
        cursor["failures"] = self.failures
        self.epoch = cursor["details_read_at"]

    def detail_version(self, hook: dict) -> str:
        return f"{row_hash(hook)}|{self.epoch}|{self.failures.get(str(hook.get('id')), '')}"

    def pages(self) -> Iterator[list]:
        yield self.log.hooks or []

    def covers(self, record_id: str, entry: dict) -> bool:
        return self.log.covers(entry.get("group"))

    def finished(self, complete: bool) -> None:
        listed = {str(hook.get("id")) for hook in self.log.hooks or []}
        self.book.cursor["failures"] = {k: v for k, v in self.failures.items() if k in listed}


class EventListing(Listing):
    """The delivery log of each webhook, as `WebhookLog` read it. No deletions (the log is
    read back only to a lookback); the ledger keeps an event while it may still change."""

    def __init__(self, book: EntityLedger, log: WebhookLog) -> None:
        self.book, self.log = book, log.read()

    def pages(self) -> Iterator[list]:
        for events in self.log.events.values():
            if events:
                yield events

    def finished(self, complete: bool) -> None:
        newest = self.book.cursor.setdefault("newest", {})
        for hid, instant in self.log.newest.items():
            newest[hid] = iso(instant)
            horizon, open_from = instant - EVENT_LOOKBACK, instant - EVENT_RECHECK_MAX
            for eid in [i for i in self.book.ids() if (self.book.get(i) or {}).get("group") == hid]:
                entry = self.book.get(eid) or {}
                day = read_instant(entry.get("day"))
                if day is not None and day < horizon and not (entry.get("waiting") and day >= open_from):
                    self.book.forget(eid)
