"""Organization-level listings: snapshots with per-organization deletions, webhook
delivery logs read newest-first back to a lookback, and monthly usage."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from .._common.errors import MeetingEltError
from .._common.http import ApiClient
from .._common.paginators import NextUrlPaginator
from .._common.report import RunReport
from .._common.state import record_deletions, revive, row_hash
from .._common.timeutil import iso, parse_instant
from .settings import EVENT_LOOKBACK, EVENT_RECHECK_MAX, USAGE, USAGE_DEFAULT_MONTHS, WEBHOOK_EVENTS

FINAL_EVENT_STATUSES = frozenset({"delivered", "failed", "success", "succeeded", "dead"})


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
    """Every page of a paginated list (`{"count", "next", "results"}`)."""
    for page in client.paginate(path, paginator=NextUrlPaginator("next"), items_path="results",
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
            eid, created = str(event["id"]), parse_instant(event.get("created_at"))
            created_all.append(created)
            row = {**event, "organization_id": hook.get("organization_id")}
            digest = row_hash(row)
            final = event.get("status") in FINAL_EVENT_STATUSES
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
