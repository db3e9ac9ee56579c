"""dlt source for the Meetric partner REST API (account, people, conversations and their transcripts, insights, summaries)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from .._common.auth import BearerAuth
from .._common.config import HttpConfiguration, http_settings, require
from .._common.engine import (
    DEFAULT_CHECKPOINT_ITEMS,
    Action,
    Engine,
    checkpoint_items_setting,
    entity_resources,
    tolerate,
)
from .._common.errors import ConfigError
from .._common.http import ApiClient
from .._common.records import read_dict, read_instant
from .._common.report import RunReport, new_report
from .._common.snapshots import snapshot_resources
from .._common.tables import MERGE, deleted_at_column
from .._common.timeutil import parse_start_date, utc_now
from .._common.transcripts import HINTS as SEGMENT_HINTS
from .._common.transcripts import TABLE as SEGMENTS
from .entities import ConversationCalls, conversation_entity, table_specs
from .helpers import classify_error
from .listing import ConversationListing
from .quota import DailyQuota
from .settings import (
    API_PREFIX,
    CONVERSATION_COLUMNS,
    DAILY_CONVERSATION_QUOTA,
    DETAIL_BATCH,
    INSIGHT_COLUMNS,
    NIL_ID,
    PAGE_SIZE_MAX,
    REQUESTS_PER_MINUTE,
    SCOPE_TABLES,
    SUMMARY_COLUMNS,
    TOPIC_COLUMNS,
)

NAME = "meetric_partner"


def api_root(base_url: str) -> str:
    """`base_url` may be the host or the full `/api/v1/rest` root; both work."""
    base = base_url.rstrip("/")
    return base if base.endswith(API_PREFIX) else f"{base}/{API_PREFIX}"


def make_client(base_url: str, api_token: str, http: HttpConfiguration | dict | None,
                report: RunReport, on_quota: Any = None) -> ApiClient:
    require(base_url, "base_url", NAME)
    require(api_token, "api_token", NAME, secret=True)
    return ApiClient(api_root(base_url), BearerAuth(api_token), report,
                     http_settings(http, requests_per_minute=REQUESTS_PER_MINUTE),
                     classify_error=functools.partial(classify_error, on_quota=on_quota))


class _ServerClock:
    """The API's own time (from `_meta.timestamp`): windows are computed on it, not ours.

    Read from `/account`, or from any other answer seen first (`observe`), so a rate limit
    on `/account` does not stop the lists that answered.
    """

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.account: dict | None = None
        self._now: datetime | None = None

    def observe(self, body: Any) -> None:
        meta = body.get("_meta") if isinstance(body, dict) else None
        if self._now is None and isinstance(meta, dict):
            self._now = read_instant(meta.get("timestamp"))

    def read_account(self) -> dict | None:
        """The `/account` record (fetched once); its answer also sets the clock."""
        if self.account is None:
            body = self.client.get("account").body
            self.account = read_dict(body.get("account")) if isinstance(body, dict) else None
            self.observe(body)
        return self.account

    def now(self) -> datetime:
        if self._now is None:
            self.read_account()
            self._now = self._now or utc_now()
        return self._now


def _fresh(columns: dict[str, dict]) -> dict[str, dict]:
    """A copy of column hints for one source instance (dlt writes into hint dicts)."""
    return {name: dict(hint) for name, hint in columns.items()}


def _table_hints() -> dict[str, dict]:
    return {
        "conversations": {"primary_key": "id", "write_disposition": MERGE,
                          "columns": {**deleted_at_column(), **_fresh(CONVERSATION_COLUMNS)}},
        "summaries": {"primary_key": "conversation_id", "write_disposition": MERGE,
                      "columns": _fresh(SUMMARY_COLUMNS)},
        SEGMENTS: dict(SEGMENT_HINTS, columns=_fresh(SEGMENT_HINTS["columns"])),
        "insights": {"primary_key": "id", "merge_key": "conversation_id", "write_disposition": MERGE,
                     "columns": _fresh(INSIGHT_COLUMNS)},
        "conversation_topics": {"primary_key": ["conversation_id", "name"], "merge_key": "conversation_id",
                                "write_disposition": MERGE, "columns": _fresh(TOPIC_COLUMNS)},
        "recording_urls": {"primary_key": "conversation_id", "write_disposition": MERGE},
    }


def quota_checkpoint(checkpoint: int, daily_quota: int) -> int:
    """The checkpoint a run uses: at most half the daily quota while it is counted, so a
    kill -9 spends at most half a day's quota units twice (a conversation fetched again on a
    later UTC day costs a unit again); 0 (off) stays off."""
    if checkpoint and daily_quota:
        return min(checkpoint, max(1, daily_quota // 2))
    return checkpoint


@dlt.source(name=NAME)
def meetric_partner(
    base_url: str = dlt.config.value,
    api_token: str = dlt.secrets.value,
    start_date: str | None = None,
    sweep_interval_hours: float = 24.0,
    include_recordings: bool = False,
    page_size: int = PAGE_SIZE_MAX,
    daily_conversation_quota: int = DAILY_CONVERSATION_QUOTA,
    checkpoint_items: int = DEFAULT_CHECKPOINT_ITEMS,
    http: HttpConfiguration | None = None,
) -> Sequence[DltResource]:
    """The Meetric partner REST API.

    Args:
        base_url: the API host (or its `/api/v1/rest` root).
        api_token: an `mt_…` token; its scopes decide which tables load.
        start_date: earliest conversation date to load (the API shows 30 days at most).
        sweep_interval_hours: hours between full sweeps of the 30-day list (0: every run).
        include_recordings: also load signed `recording_urls` (needs the `recordings` scope).
        page_size: conversations per list page, 1–25.
        daily_conversation_quota: the token's daily quota of unique conversations; the source
            counts the ones it touches per UTC day and stops before it (0: no counting, stop
            at the API's first quota answer).
        checkpoint_items: records fetched per load (their per-item calls): a run that reaches
            it stops cleanly and loads what it fetched with its state; `meeting-elt run` goes
            on at once in a new load, a scheduled `pipeline.run` in its next run (0: off).
            While the quota is counted, at most half of it (`quota_checkpoint`).
        http: client tuning (`[sources.meetric_partner.http]`).
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    if int(daily_conversation_quota) < 0:
        raise ConfigError(f"daily_conversation_quota={daily_conversation_quota} must be 0 (no counting) or more")
    start = parse_start_date(start_date)
    checkpoint = quota_checkpoint(checkpoint_items_setting(checkpoint_items), int(daily_conversation_quota))
    report = new_report(NAME)
    calls: ConversationCalls | None = None
    client = make_client(base_url, api_token, http, report,
                         on_quota=lambda: calls.quota.spend_at_server() if calls and calls.quota else None)
    clock = _ServerClock(client)

    def listed(table: str, path: str | None = None) -> Any:
        def fetch() -> list:
            body = client.get(path or table).body
            clock.observe(body)
            return body.get(table) if isinstance(body, dict) and isinstance(body.get(table), list) else []

        return fetch

    def account() -> list:
        record = clock.read_account()
        return [record] if record else []

    snapshot = {"client": client, "report": report, "now": clock.now}
    people = [resource for table in ("users", "teams", "departments")
              for resource in snapshot_resources(
                  name=table, fetch=listed(table), **snapshot,
                  hints={"primary_key": "id", "write_disposition": MERGE, "columns": deleted_at_column()})]

    calls = ConversationCalls(client, report, include_recordings=include_recordings)

    def before() -> bool:
        state = dlt.current.source_state()
        calls.quota = DailyQuota(state, clock.now(), int(daily_conversation_quota))
        return True

    def listing(book: Any) -> ConversationListing:
        return ConversationListing(book, client, report, now=clock.now(), start_date=start,
                                   sweep_interval_hours=float(sweep_interval_hours),
                                   page_size=int(page_size), observe=clock.observe)

    engine = Engine(conversation_entity(calls, report), listing, client=client, report=report,
                    now=clock.now, before=_guarded(before, report), after=lambda: calls.quota.save(),
                    checkpoint_items=checkpoint)
    calls.engine = engine
    engine.entity.batch = DETAIL_BATCH
    conversations = entity_resources(engine, table_specs(report, _table_hints()), report)

    return [
        *snapshot_resources(name="account", fetch=account, deletions=False, **snapshot,
                            hints={"primary_key": "id", "write_disposition": MERGE}),
        *people,
        *conversations,
        *snapshot_resources(name="webhook_deliveries", fetch=listed("deliveries", "webhooks/deliveries"),
                            deletions=False, day=lambda d: d.get("created_at"), keep_days=8, **snapshot,
                            hints={"primary_key": "id", "write_disposition": MERGE}),
    ]


def _guarded(before: Any, report: RunReport) -> Any:
    """`before`, but a refused call (the API's clock is read from `/account`) stops the
    conversations cleanly for this run instead of failing it."""
    def run() -> bool:
        ready = False
        with tolerate(Action.STOP) as refused:
            ready = before()
        if refused.error is not None:
            why = getattr(refused.error, "message", str(refused.error))
            report.warn(f"conversations: not read this run: {why}")
            report.wait("conversations", f"not read this run ({why}); the next run reads it")
        return ready

    return run


def check(base_url: str, api_token: str, http: HttpConfiguration | dict | None = None) -> dict[str, str | None]:
    """Verifies the token and probes each scope without spending the conversation quota.

    Returns {table: None if loadable, else why not}. Raises AuthError for a bad token.
    """
    report = new_report(NAME)
    client = make_client(base_url, api_token, http, report)
    client.get("account")
    access: dict[str, str | None] = {"account": None, "webhook_deliveries": None}
    probes = {"users": "users", "teams": "teams", "departments": "departments",
              "conversations": "conversations?limit=1",
              "transcripts": f"conversations/{NIL_ID}/transcript",
              "insights": f"conversations/{NIL_ID}/insights",
              "recordings": f"conversations/{NIL_ID}/recording-url"}
    for scope, path in probes.items():
        with tolerate(Action.NOT_FOUND, Action.SKIP, Action.STOP, Action.RETRY) as failed:
            client.get(path)
        if failed.action in (None, Action.NOT_FOUND):
            why = None  # allowed (a 404: the probe id just does not exist)
        elif failed.action is Action.SKIP:
            why = f"needs the '{getattr(failed.error, 'scope', None) or scope}' scope ({failed.error.message})"
        else:
            why = str(failed.error)
        for table in SCOPE_TABLES[scope]:
            access[table] = why
    client.close()
    return access


__all__ = ["meetric_partner", "check"]
