"""dlt source for the Convo API (conversations, transcripts, keypoints, feedback, calendar, profile, webhooks)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from .._common.auth import BearerAuth
from .._common.config import HttpConfiguration, http_settings, require
from .._common.errors import ConfigError, MeetingEltError, RateLimitError, ScopeError
from .._common.http import ApiClient
from .._common.report import RunReport, new_report
from .._common.state import changed_rows, deleted_at_column, prune_tombstones, reconcile_snapshot
from .._common.timeutil import parse_start_date
from .._common.transcripts import HINTS as SEGMENT_HINTS
from .._common.transcripts import TABLE as SEGMENTS
from .account import Account
from .calendar_events import NOT_CONNECTED, sync_calendar
from .conversations import ConversationSync
from .helpers import CalendarNotConnected, classify_error, profile_row, tier_of, without_secrets
from .insights import Credits, InsightWork
from .settings import (
    CALENDAR_COLUMNS,
    CONVERSATION_COLUMNS,
    DEFAULT_BASE_URL,
    DEFAULT_RESERVE,
    FEEDBACK_COLUMNS,
    HOURLY_LIMIT,
    KEYPOINTS_COLUMNS,
    PAGE_SIZE_MAX,
    PROFILE_COLUMNS,
    PROFILE_TABLE,
    WEBHOOK_TIERS,
    columns,
)

NAME = "convo"
MERGE = {"disposition": "merge", "strategy": "delete-insert"}
TABLES = (PROFILE_TABLE, "conversations", SEGMENTS, "keypoints", "feedback", "calendar_events", "webhooks")


def make_client(base_url: str, api_key: str, http: HttpConfiguration | dict | None,
                report: RunReport, reserve: int = DEFAULT_RESERVE) -> ApiClient:
    require(base_url, "base_url", NAME)
    require(api_key, "api_key", NAME, secret=True)
    return ApiClient(base_url, BearerAuth(api_key), report, http_settings(http),
                     classify_error=classify_error, min_remaining=reserve)


@dlt.source(name=NAME)
def convo(
    api_key: str = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    start_date: str | None = None,
    sweep_interval_hours: float = 24.0,
    page_size: int = PAGE_SIZE_MAX,
    rate_limit_reserve: int = DEFAULT_RESERVE,
    ai_recheck_days: float = 7.0,
    ai_generation_budget: int = 0,
    calendar_days_back: float = 7.0,
    calendar_days_ahead: float = 30.0,
    http: HttpConfiguration | None = None,
) -> Sequence[DltResource]:
    """The Convo API, within the plan's rolling-hour request limit.

    Args:
        api_key: a `convo_…` key (Starter plan or above).
        base_url: the API root, `https://www.itsconvo.com/api/v1` by default.
        start_date: earliest conversation `startTime` to load (default: all).
        sweep_interval_hours: hours between full listings that catch renames and deletions (0: every run).
        page_size: conversations per list page, 1–100.
        rate_limit_reserve: requests of the rolling hour left unspent (at least 1, so the next
            run's first request never meets a 429).
        ai_recheck_days: how long after a conversation starts its missing keypoints/feedback
            are looked for again (GET, back-off from 1 hour to 1 day).
        ai_generation_budget: AI credits this source may spend per calendar month (UTC) to
            generate missing keypoints/feedback with POST; 0 (default) never generates.
        calendar_days_back: calendar events are loaded from this many days ago…
        calendar_days_ahead: …to this many days ahead.
        http: client tuning (`[sources.convo.http]`).
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    if int(rate_limit_reserve) < 1:
        raise ConfigError(f"rate_limit_reserve={rate_limit_reserve} must be at least 1")
    if int(ai_generation_budget) < 0:
        raise ConfigError(f"ai_generation_budget={ai_generation_budget} must not be negative")
    start = parse_start_date(start_date)
    report = new_report(NAME)
    client = make_client(base_url, api_key, http, report, int(rate_limit_reserve))
    account = Account(client, report, reserve=int(rate_limit_reserve))

    def ready() -> bool:
        return account.ready(dlt.current.source_state())

    @dlt.resource(name=PROFILE_TABLE, primary_key="email", write_disposition=MERGE,
                  columns=columns(PROFILE_COLUMNS))
    def user_profile() -> Iterator[Any]:
        """The key's user, keyed by `email` (the profile has no id): one row, loaded when it changed."""
        if not ready() and account.profile is None:
            return
        row = profile_row(account.profile, report)
        if row is not None:
            yield changed_rows(dlt.current.resource_state(), [row], key="email")

    @dlt.resource(name="conversations", primary_key="id", write_disposition=MERGE)
    def conversations() -> Iterator[Any]:
        if not ready():
            account.report_budget()
            return
        source_state, state = dlt.current.source_state(), dlt.current.resource_state()
        prune_tombstones(source_state, account.now)
        credits = Credits(source_state, int(ai_generation_budget), account.now,
                          account.ai_generations.get("remaining"))
        insights = InsightWork(client, report, now=account.now, state=state,
                               recheck_days=float(ai_recheck_days), credits=credits)
        sync = ConversationSync(client, report, now=account.now, start_date=start,
                                sweep_interval_hours=float(sweep_interval_hours),
                                page_size=int(page_size), state=state, source_state=source_state,
                                insights=insights)
        yield from sync.run()
        if sync.stopped:
            account.stop(sync.stopped)
            report.warn(f"stopped for this run: {sync.stopped}")
        account.report_budget()

    conversations.apply_hints(table_name=SEGMENTS, create_table_variant=True, **SEGMENT_HINTS)
    for kind, hints in (("keypoints", KEYPOINTS_COLUMNS), ("feedback", FEEDBACK_COLUMNS)):
        conversations.apply_hints(table_name=kind, primary_key="conversation_id", columns=columns(hints),
                                  write_disposition=MERGE, create_table_variant=True)
    # after the variants: a variant starts as a copy of the resource's hints, and these
    # columns belong to `conversations` alone
    conversations.apply_hints(columns={**columns(CONVERSATION_COLUMNS), **deleted_at_column()})

    @dlt.resource(name="calendar_events", primary_key="id", write_disposition=MERGE,
                  columns={**columns(CALENDAR_COLUMNS), **deleted_at_column()})
    def calendar_events() -> Iterator[Any]:
        account.release("calendar_events")
        if not ready():
            report.wait("calendar_events", "not read: the request budget is spent")
            return
        try:
            yield from sync_calendar(
                client, report, now=account.now, state=dlt.current.resource_state(),
                source_state=dlt.current.source_state(), days_back=float(calendar_days_back),
                days_ahead=float(calendar_days_ahead), sweep_interval_hours=float(sweep_interval_hours))
        except RateLimitError as exc:
            report.wait("calendar_events", f"not read: {account.stop(exc)}")
        account.record_spend()

    @dlt.resource(name="webhooks", primary_key="id", write_disposition=MERGE, columns=deleted_at_column())
    def webhooks() -> Iterator[Any]:
        account.release("webhooks")
        if not ready():
            report.wait("webhooks", "not read: the request budget is spent")
            return
        if not account.webhooks_allowed:
            report.skip("webhooks", f"webhooks need the Professional plan; this key's plan is "
                                    f"'{account.tier}' (no request made)")
            return
        try:
            items = client.get("webhooks").body.get("data") or []
        except ScopeError as exc:
            report.skip("webhooks", f"the key may not read webhooks ({exc.message})")
            return
        except RateLimitError as exc:
            report.wait("webhooks", f"not read: {account.stop(exc)}")
            return
        finally:
            account.record_spend()
        rows = [without_secrets(i) for i in items if isinstance(i, dict)]
        yield reconcile_snapshot(dlt.current.resource_state(), dlt.current.source_state(),
                                 "webhooks", rows, account.now, report)

    return [user_profile, conversations, calendar_events, webhooks]


def check(api_key: str, base_url: str = DEFAULT_BASE_URL,
          http: HttpConfiguration | dict | None = None) -> dict[str, str | None]:
    """Verifies the key and says which tables its plan allows: 2 requests (the profile and one
    calendar event), 3 when the profile names a plan this source does not know.

    The plan is the profile's `subscription.tier`: webhooks need Professional or above.

    Returns {table: None if loadable, else why not}. Raises AuthError for a bad key or a
    plan without API access (Free).
    """
    report = new_report(NAME)
    client = make_client(base_url, api_key, http, report)
    try:
        body = client.get("user/profile").body
        tier = tier_of(body.get("data") if isinstance(body, dict) else None)
        access: dict[str, str | None] = {table: None for table in TABLES}
        if tier not in HOURLY_LIMIT:  # a plan this source does not know: ask
            try:
                client.get("webhooks")
            except ScopeError as exc:
                access["webhooks"] = f"the key may not read webhooks ({exc.message})"
        elif tier not in WEBHOOK_TIERS:
            access["webhooks"] = f"webhooks need the Professional plan (this key's plan: '{tier}')"
        try:
            client.get("calendar/events", {"maxResults": 1})
        except CalendarNotConnected:
            access["calendar_events"] = NOT_CONNECTED
        except MeetingEltError as exc:
            access["calendar_events"] = str(exc)
        return access
    finally:
        client.close()


__all__ = ["convo", "check"]
