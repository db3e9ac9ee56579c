"""Calendar events: a window around now, paged by `timeMin`, changes and cancellations found by hash.

`GET /calendar/events` has no paging: it answers at most 50 events starting after `timeMin`,
soonest first. Events carry Google's `start`/`end` objects: `{"dateTime", "timeZone"}`, the
`dateTime` with the event's local offset, or `{"date"}` for an all-day event (taken as
midnight UTC of that day). The source asks again from the last event's `start` (less a
second, so events sharing that instant are not skipped; repeats are dropped by id) until a
short answer. Events that were in the window last time and are no longer listed were
cancelled: they are marked with `deleted_at`. An event whose start cannot be read is loaded
as sent and named in the report. Without a connected Google Calendar the table is skipped
with a note, and the calendar is looked for again only at the next sweep (it costs a request).

Resource state: events {id: [row hash, start]}, not_connected_at.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from .._common.http import ApiClient
from .._common.records import excerpt, is_blank
from .._common.report import RunReport
from .._common.state import TOMBSTONES_KEY, record_deletions, revive, row_hash, sweep_due
from .._common.timeutil import iso
from .helpers import CalendarNotConnected, event_start
from .settings import CALENDAR_PAGE_MAX

TABLE = "calendar_events"
CURSOR_OVERLAP = timedelta(seconds=1)  # the next `timeMin` is the last start less this
NOT_CONNECTED = ("no Google Calendar is connected to this Convo account (connect one in the Convo "
                 "dashboard to load it)")


def sync_calendar(client: ApiClient, report: RunReport, *, now: datetime, state: dict,
                  source_state: dict, days_back: float, days_ahead: float,
                  sweep_interval_hours: float) -> Iterator[Any]:
    """Yields the events of [now - days_back, now + days_ahead) that are new or changed."""
    since_probe = state.get("not_connected_at")
    if since_probe and not sweep_due({"last_sweep_at": since_probe}, sweep_interval_hours, now):
        report.skip(TABLE, f"{NOT_CONNECTED}; looked for again at the next sweep")
        return
    time_min, time_max = now - timedelta(days=days_back), now + timedelta(days=days_ahead)
    try:
        events, complete = _list(client, report, time_min, time_max)
    except CalendarNotConnected:
        state["not_connected_at"] = iso(now)
        report.skip(TABLE, NOT_CONNECTED)
        return
    state.pop("not_connected_at", None)
    known: dict[str, list] = state.setdefault("events", {})
    tombstones = source_state.get(TOMBSTONES_KEY, {}).get(TABLE, {})
    changed = []
    for eid, event in events.items():
        start, problem = event_start(event)
        if problem:
            report.bad_record(TABLE, eid, f"{problem}: loaded as sent" + (
                "" if start else ", not placed in the window"), loaded=True)
        digest = row_hash(event)
        if known.get(eid, [None])[0] != digest or eid in tombstones:
            changed.append(event)
        known[eid] = [digest, iso(start) if start else None]
    revive(source_state, TABLE, events)
    if complete:
        _mark_cancelled(report, source_state, known, set(events), time_min, time_max, now)
    for eid in [e for e, (_, start) in known.items() if start and start < iso(time_min)]:
        del known[eid]  # left the window by age, not cancelled
    if complete:  # an event without a readable start cannot be told cancelled from moved away
        for eid in [e for e, (_, start) in known.items() if start is None and e not in events]:
            del known[eid]
    if changed:
        yield changed


def _list(client: ApiClient, report: RunReport, time_min: datetime,
          time_max: datetime) -> tuple[dict[str, dict], bool]:
    events: dict[str, dict] = {}
    cursor = time_min
    while True:
        params = {"maxResults": CALENDAR_PAGE_MAX, "timeMin": iso(cursor), "timeMax": iso(time_max)}
        items = client.get("calendar/events", params).body.get("data") or []
        new = 0
        for event in items:
            if not isinstance(event, dict) or is_blank(event.get("id")):
                report.bad_record(TABLE, excerpt(event), "a calendar event without an id: not loaded",
                                  loaded=False)
                continue
            if event["id"] not in events:
                events[str(event["id"])] = event
                new += 1
        if len(items) < CALENDAR_PAGE_MAX:
            return events, True
        starts = [s for s, _ in (event_start(e) for e in items if isinstance(e, dict)) if s]
        last = max(starts) - CURSOR_OVERLAP if starts else None
        if not new or last is None or last <= cursor:
            report.warn(f"calendar_events: more than {CALENDAR_PAGE_MAX} events at {iso(cursor)}; "
                        "the rest of the window is not loaded this run")
            return events, False
        cursor = last


def _mark_cancelled(report: RunReport, source_state: dict, known: dict[str, list], seen: set[str],
                    time_min: datetime, time_max: datetime, now: datetime) -> None:
    lo, hi = iso(time_min), iso(time_max)
    in_window = {eid for eid, (_, start) in known.items() if start and lo <= start < hi}
    if not seen and in_window:
        report.warn(f"{TABLE}: the calendar listed nothing while {len(in_window)} events are known: "
                    "refusing to mark any as cancelled")
        return
    gone = in_window - seen
    if gone:
        record_deletions(source_state, TABLE, gone, now)
        for eid in gone:
            del known[eid]
        report.warn(f"{TABLE}: {len(gone)} events left the calendar; marked with deleted_at")
