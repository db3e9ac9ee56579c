"""Organization-level listings: snapshots with per-organization deletions, webhooks with the
failure counts only their detail has, delivery logs read newest-first back to a lookback,
upcoming calendar events, and monthly usage."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from .._common.errors import AuthError, MeetingEltError, NotFoundError, RateLimitError, ScopeError
from .._common.http import ApiClient
from .._common.records import Problems, read_instant, read_text, report_problems
from .._common.report import RunReport
from .._common.state import record_deletions, revive, row_hash
from .._common.timeutil import iso, parse_instant
from .helpers import DrfPaginator, conform
from .settings import (
    EVENT_LOOKBACK,
    EVENT_RECHECK_MAX,
    FINAL_EVENT_STATUSES,
    USAGE,
    USAGE_DEFAULT_MONTHS,
    WEBHOOK_EVENTS,
    WEBHOOKS,
)

UPCOMING = "upcoming_meetings"


def event_status(event: dict) -> str:
    """The delivery status, lower case (the API sends `SUCCESS`, `FAILED`)."""
    return (read_text(event.get("status")) or "").strip().lower()


def org_snapshot(resource_state: dict, source_state: dict, table: str, items: list[dict],
                 scanned_orgs: Iterable[int | None], now: datetime, report: RunReport,
                 *, refuse_empty: bool = True) -> list[dict]:
    """Rows of a full listing that changed since the last run, by content hash.

    Records no longer listed are marked deleted, but only in the organizations read in full
    this run: records of organizations the user stopped selecting are kept as they are.
    An organization that lists nothing while records of it are known marks nothing.
    """
    scanned = set(scanned_orgs)
    known: dict[str, list] = resource_state.setdefault("hashes", {})
    current = {str(i["id"]): i for i in items}
    listed_orgs = {i.get("organization_id") for i in items}
    gone = {k for k, (_, org) in known.items() if org in scanned and k not in current}
    empty = {org for _, org in known.values() if org in scanned and org not in listed_orgs}
    if empty and refuse_empty:
        report.warn(f"{table}: organizations {sorted(map(str, empty))} listed nothing while records of them are "
                    "known: refusing to mark those as deleted")
        gone = {k for k in gone if known[k][1] not in empty}
    if gone:
        record_deletions(source_state, table, gone, now)
        report.warn(f"{table}: {len(gone)} no longer listed by the vendor; marked with deleted_at")
        for k in gone:
            del known[k]
    revive(source_state, table, current)
    changed = []
    for record_id, item in current.items():
        digest = row_hash(item)
        if known.get(record_id, [None])[0] != digest:
            known[record_id] = [digest, item.get("organization_id")]
            changed.append(item)
    return changed


def list_all(client: ApiClient, path: str, page_size: int, params: dict | None = None) -> Iterator[list]:
    """Every page of a paginated list (`{"count", "next", "results"}`, or without `next`)."""
    for page in client.paginate(path, paginator=DrfPaginator(page_size), items_path="results",
                                params={"size": page_size, **(params or {})}):
        yield page.items


def webhook_events(client: ApiClient, report: RunReport, hook: dict, state: dict,
                   page_size: int) -> list[dict]:
    """New and changed delivery events of one webhook.

    Events are listed newest first and change (retries, delivery) for a while after they
    are created, so the list is read back to `EVENT_LOOKBACK` before the newest event seen
    last run, or to the oldest event that was not final then, whichever is older. Only
    events new or changed since (by content hash) are returned.
    """
    hook_state = state.setdefault(str(hook["id"]), {})
    newest = parse_instant(hook_state.get("newest"))
    cutoff = newest - EVENT_LOOKBACK if newest else None
    recent: dict[str, list] = hook_state.get("recent", {})  # {id: [hash, created_at, final]}
    oldest_open = newest - EVENT_RECHECK_MAX if newest else None
    open_since = [parse_instant(c) for _, c, final in recent.values() if not final and c]
    open_since = [c for c in open_since if oldest_open is None or c >= oldest_open]
    stop_before = min([cutoff, *open_since]) if cutoff else None
    out, kept = [], {}
    for items in list_all(client, WEBHOOK_EVENTS, page_size, {"webhook_id": hook["id"]}):
        created_all = []
        for event in items:
            if not isinstance(event, dict) or event.get("id") is None:
                report.warn(f"webhook {hook['id']}: skipped a malformed event: {str(event)[:200]}")
                continue
            eid, created = str(event["id"]), read_instant(event.get("created_at"))
            created_all.append(created)
            row = {**event, "organization_id": hook.get("organization_id")}
            digest = row_hash(row)
            final = event_status(event) in FINAL_EVENT_STATUSES
            in_window = cutoff is None or created is None or created >= cutoff
            old = recent.get(eid)
            if (old is None and in_window) or (old is not None and old[0] != digest):
                out.append(row)
            kept[eid] = [digest, created, final]
            if created and (newest is None or created > newest):
                newest = created
        dated = [c for c in created_all if c is not None]
        newest_first = len(dated) < 2 or dated[0] >= dated[-1]
        if stop_before is not None and newest_first and dated and max(dated) < stop_before:
            break
    horizon = newest - EVENT_LOOKBACK if newest else None
    hook_state.update(newest=iso(newest) if newest else None, recent={
        eid: [digest, iso(created) if created else None, final]
        for eid, (digest, created, final) in kept.items()
        if created is None or horizon is None or created >= horizon
        or (not final and created >= newest - EVENT_RECHECK_MAX)})
    return out


def webhook_rows(client: ApiClient, report: RunReport, hooks: list[dict], changed: list[dict],
                 wanted: set[str], state: dict) -> tuple[list[dict], bool]:
    """Webhook rows to load, and whether every detail wanted was read.

    `failure_count` and `last_failure_reason` come only from a webhook's detail
    (`webhooks/{id}/`), read for `wanted`; the values last read are kept in state, so a row
    loaded for a change in the listing keeps them without another call. A row is loaded when
    the listing changed or the detail's values did. Details that failed are read next run.
    """
    details: dict[str, list] = state.setdefault("details", {})  # id -> [failure_count, reason]
    owed: set[str] = set(state.get("details_owed", []))
    wanted = wanted | owed
    changed_ids = {str(h["id"]) for h in changed}
    out, complete, stopped = [], True, False
    for hook in hooks:
        hid = str(hook["id"])
        fresh = False
        if hid in wanted and not stopped:
            try:
                body = client.get(f"{WEBHOOKS}{hook['id']}/").body
            except NotFoundError:
                continue  # deleted since it was listed
            except AuthError:
                raise
            except RateLimitError as exc:
                report.wait("webhooks", f"details stopped: {exc.message}")
                stopped = True
            except (ScopeError, MeetingEltError) as exc:
                report.warn(f"webhook {hid}: failure_count not read (read next run): {exc.message}")
                body = None
            if stopped or not isinstance(body, dict):
                complete = False
                owed.add(hid)
            else:
                owed.discard(hid)
                read = [body.get("failure_count"), body.get("last_failure_reason")]
                fresh, details[hid] = details.get(hid) != read, read
        if hid in changed_ids or fresh:
            failure_count, reason = details.get(hid) or [None, None]
            problems = Problems()
            out.append(conform({**hook, "failure_count": failure_count, "last_failure_reason": reason},
                               "webhooks", problems))
            report_problems(report, "webhooks", hid, problems)
    listed = {str(h["id"]) for h in hooks}
    for hid in set(details) - listed:
        del details[hid]
    state["details_owed"] = sorted(owed & listed)
    return out, complete


def upcoming_snapshot(state: dict, source_state: dict, rows: list[dict], scanned_orgs: Iterable[int],
                      now: datetime, report: RunReport) -> list[dict]:
    """Upcoming events new or changed since the last run (by content hash).

    An event no longer listed whose start has passed took place: its row stays as last seen.
    One that left the list while its start was still ahead was cancelled or moved out of the
    calendar: it is marked `deleted_at`. Only organizations whose whole list was read (not cut
    at the limit, calendar connected) are compared.
    """
    scanned = set(scanned_orgs)
    known: dict[str, list] = state.setdefault("known", {})  # id -> [hash, organization, start]
    current = {str(r["id"]): r for r in rows}
    gone = [k for k, (_, org, _) in known.items() if org in scanned and k not in current]
    cancelled = [k for k in gone if (read_instant(known[k][2]) or now) > now]
    if cancelled:
        record_deletions(source_state, UPCOMING, cancelled, now)
        report.warn(f"{UPCOMING}: {len(cancelled)} events left the calendar before they started; "
                    "marked with deleted_at")
    for k in gone:
        del known[k]
    revive(source_state, UPCOMING, current)
    changed = []
    for record_id, row in current.items():
        digest = row_hash(row)
        if known.get(record_id, [None])[0] != digest:
            start = read_instant(row.get("start_time"))
            known[record_id] = [digest, row.get("organization_id"), iso(start) if start else None]
            problems = Problems()
            changed.append(conform(row, UPCOMING, problems))
            report_problems(report, UPCOMING, record_id, problems)
    return changed


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def usage_months(state: dict, now: datetime, start_day: date | None) -> list[tuple[date, date]]:
    """Calendar months to (re-)read: from the month of the last read's eve to this month."""
    read_through = parse_instant(state.get("read_through"))
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


def usage_rows(client: ApiClient, report: RunReport, org: int, months: list[tuple[date, date]],
               state: dict) -> list[dict]:
    """Usage per capability and calendar month for one organization; changed rows only."""
    hashes: dict[str, str] = state.setdefault("hashes", {})
    out, updates = [], {}
    for first, last in months:
        body = client.get(USAGE, {"organization_id": org, "start_date": first.isoformat(),
                                  "end_date": last.isoformat()}).body
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise MeetingEltError(f"usage for organization {org}: expected a `results` list")
        for item in results:
            if not isinstance(item, dict) or not item.get("capability_name"):
                report.warn(f"usage for organization {org}: skipped a malformed row: {str(item)[:200]}")
                continue
            row: dict[str, Any] = {**item, "organization_id": item.get("organization_id") or org,
                                   "period_start": first.isoformat(), "period_end": last.isoformat()}
            key = f"{row['organization_id']}|{row['capability_name']}|{row['period_start']}"
            digest = row_hash(row)
            if hashes.get(key) != digest:
                updates[key] = digest
                out.append(row)
    hashes.update(updates)  # only once every month was read: a cut run loses nothing
    return out
