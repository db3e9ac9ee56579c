"""dlt source for the Convo API (conversations, transcripts, keypoints, feedback, calendar, profile, webhooks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from .._common.auth import BearerAuth
from .._common.config import HttpConfiguration, http_settings, require
from .._common.engine import (
    DEFAULT_CHECKPOINT_ITEMS,
    Engine,
    SnapshotListing,
    TableSpec,
    checkpoint_items_setting,
    entity_resources,
)
from .._common.errors import ConfigError, ScopeError
from .._common.http import ApiClient, error_message
from .._common.ledger import EntityLedger, Ledger
from .._common.report import RunReport, new_report
from .._common.snapshots import snapshot_resources
from .._common.tables import MERGE, deleted_at_column
from .._common.timeutil import parse_start_date
from .._common.transcripts import HINTS as SEGMENT_HINTS
from .._common.transcripts import TABLE as SEGMENTS
from .entities import (
    ConversationCalls,
    calendar_entity,
    conversation_entity,
    conversation_tables,
    webhooks_entity,
)
from .helpers import (
    NOT_CONNECTED,
    calendar_not_connected,
    classify_error,
    probe_refused,
    profile_row,
    tier_of,
)
from .listing import CalendarListing, ConversationListing
from .quota import Account
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
TABLES = (PROFILE_TABLE, "conversations", SEGMENTS, "keypoints", "feedback", "calendar_events", "webhooks")


def make_client(base_url: str, api_key: str, http: HttpConfiguration | dict | None,
                report: RunReport, reserve: int = DEFAULT_RESERVE) -> ApiClient:
    require(base_url, "base_url", NAME)
    require(api_key, "api_key", NAME, secret=True)
    return ApiClient(base_url, BearerAuth(api_key), report, http_settings(http),
                     classify_error=classify_error, min_remaining=reserve)


def _hints() -> dict[str, dict]:
    """Column hints for one source instance (dlt writes into hint dicts: never share one)."""
    return {
        "conversations": {"primary_key": "id", "write_disposition": MERGE,
                          "columns": {**columns(CONVERSATION_COLUMNS), **deleted_at_column()}},
        SEGMENTS: dict(SEGMENT_HINTS, columns=columns(SEGMENT_HINTS["columns"])),
        "keypoints": {"primary_key": "conversation_id", "write_disposition": MERGE,
                      "columns": columns(KEYPOINTS_COLUMNS)},
        "feedback": {"primary_key": "conversation_id", "write_disposition": MERGE,
                     "columns": columns(FEEDBACK_COLUMNS)},
        "calendar_events": {"primary_key": "id", "write_disposition": MERGE,
                            "columns": {**columns(CALENDAR_COLUMNS), **deleted_at_column()}},
        "webhooks": {"primary_key": "id", "write_disposition": MERGE, "columns": deleted_at_column()},
        PROFILE_TABLE: {"primary_key": "email", "write_disposition": MERGE, "columns": columns(PROFILE_COLUMNS)},
    }


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
    checkpoint_items: int = DEFAULT_CHECKPOINT_ITEMS,
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
        checkpoint_items: records fetched per load (their per-item calls): a run that reaches
            it stops cleanly and loads what it fetched with its state; `meeting-elt run` goes
            on at once in a new load, a scheduled `pipeline.run` in its next run (0: off).
        http: client tuning (`[sources.convo.http]`).
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    if int(rate_limit_reserve) < 1:
        raise ConfigError(f"rate_limit_reserve={rate_limit_reserve} must be at least 1")
    if int(ai_generation_budget) < 0:
        raise ConfigError(f"ai_generation_budget={ai_generation_budget} must not be negative")
    start = parse_start_date(start_date)
    sweep_hours = float(sweep_interval_hours)
    report = new_report(NAME)
    client = make_client(base_url, api_key, http, report, int(rate_limit_reserve))
    account = Account(client, report, reserve=int(rate_limit_reserve))
    hints = _hints()
    engine_args: dict[str, Any] = {"client": client, "report": report, "now": lambda: account.now}
    checkpoint = checkpoint_items_setting(checkpoint_items)

    def profile() -> list:
        account.ready()
        row = profile_row(account.profile, report)
        return [row] if row is not None else []

    # conversations, their transcripts, keypoints and feedback
    calls = ConversationCalls(client, report, recheck_days=float(ai_recheck_days),
                              budget=int(ai_generation_budget))

    def conversation_listing(book: EntityLedger) -> ConversationListing:
        account.ready()
        calls.start(dlt.current.source_state(), account.now, account.ai_generations.get("remaining"))
        return ConversationListing(book, client, report, now=account.now, start_date=start,
                                   sweep_interval_hours=sweep_hours, page_size=int(page_size),
                                   loads_rows="conversations" in conversations.selected)

    def conversations_done() -> None:
        book = Ledger(dlt.current.source_state()).entity("conversations")
        calls.report_left(list(book.owed()), {rid for rid, _ in book.due(account.now)})
        account.settle(None if conversations.run.checkpoint else conversations.run.stopped)

    conversations = Engine(conversation_entity(calls, report), conversation_listing, **engine_args,
                           checkpoint_items=checkpoint,
                           before=account.before("conversations"), after=conversations_done)

    # the calendar: a window around now
    def calendar_listing(book: EntityLedger) -> CalendarListing:
        account.ready()
        return CalendarListing(book, client, report, now=account.now, days_back=float(calendar_days_back),
                               days_ahead=float(calendar_days_ahead), sweep_interval_hours=sweep_hours)

    calendar = Engine(calendar_entity(report), calendar_listing, **engine_args, checkpoint_items=checkpoint,
                      before=account.before("calendar_events"),
                      after=lambda: account.settle(None if calendar.run.checkpoint else calendar.run.stopped))

    # webhooks: a snapshot, on Professional and above
    def webhook_list() -> list:
        account.ready()
        if not account.webhooks_allowed:
            raise ScopeError(f"webhooks need the Professional plan; this key's plan is '{account.tier}' "
                             "(no request made)")
        items = client.get("webhooks").body.get("data") or []
        return [item for item in items if isinstance(item, dict)]

    webhooks = Engine(webhooks_entity(), lambda book: SnapshotListing(webhook_list), **engine_args,
                      checkpoint_items=checkpoint,
                      before=account.before("webhooks"), after=lambda: account.settle(webhooks.run.stopped))

    return [
        *snapshot_resources(name=PROFILE_TABLE, fetch=profile, key="email", deletions=False,
                            hints=hints[PROFILE_TABLE], **engine_args),
        *entity_resources(conversations, conversation_tables(report, hints), report),
        *entity_resources(calendar, [TableSpec("calendar_events", hints=hints["calendar_events"])], report),
        *entity_resources(webhooks, [TableSpec("webhooks", hints=hints["webhooks"])], report),
    ]


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
            answer = client.get("webhooks", accept=lambda a: a.status == 403)
            if answer.status == 403:
                access["webhooks"] = f"the key may not read webhooks (forbidden: {error_message(answer.body)})"
        elif tier not in WEBHOOK_TIERS:
            access["webhooks"] = f"webhooks need the Professional plan (this key's plan: '{tier}')"
        answer = client.get("calendar/events", {"maxResults": 1}, accept=probe_refused)
        if calendar_not_connected(answer):
            access["calendar_events"] = NOT_CONNECTED
        elif probe_refused(answer):
            access["calendar_events"] = f"HTTP {answer.status}: {error_message(answer.body)}"
        return access
    finally:
        client.close()


__all__ = ["convo", "check"]
