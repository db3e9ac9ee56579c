"""dlt source for the Meetric partner REST API (account, people, conversations and their transcripts, insights, summaries)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from .._common.auth import BearerAuth
from .._common.config import HttpConfiguration, http_settings, require
from .._common.errors import ConfigError, MeetingEltError, NotFoundError, RateLimitError, ScopeError
from .._common.http import ApiClient
from .._common.records import excerpt, is_blank, read_dict, read_instant, read_text
from .._common.report import RunReport, new_report
from .._common.state import changed_rows, deleted_at_column, prune_tombstones, reconcile_snapshot
from .._common.timeutil import parse_start_date, utc_now
from .._common.transcripts import HINTS as SEGMENT_HINTS
from .._common.transcripts import TABLE as SEGMENTS
from .conversations import ConversationSync
from .helpers import classify_error
from .settings import (
    API_PREFIX,
    CONVERSATION_COLUMNS,
    DAILY_CONVERSATION_QUOTA,
    INSIGHT_COLUMNS,
    NIL_ID,
    PAGE_SIZE_MAX,
    REQUESTS_PER_MINUTE,
    SCOPE_TABLES,
    SUMMARY_COLUMNS,
    TOPIC_COLUMNS,
)

NAME = "meetric_partner"
MERGE = {"disposition": "merge", "strategy": "delete-insert"}


def api_root(base_url: str) -> str:
    """`base_url` may be the host or the full `/api/v1/rest` root; both work."""
    base = base_url.rstrip("/")
    return base if base.endswith(API_PREFIX) else f"{base}/{API_PREFIX}"


def make_client(base_url: str, api_token: str, http: HttpConfiguration | dict | None,
                report: RunReport) -> ApiClient:
    require(base_url, "base_url", NAME)
    require(api_token, "api_token", NAME, secret=True)
    return ApiClient(api_root(base_url), BearerAuth(api_token), report,
                     http_settings(http, requests_per_minute=REQUESTS_PER_MINUTE),
                     classify_error=classify_error)


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


def _with_ids(table: str, items: Any, report: RunReport) -> list[dict]:
    """The items of a list answer that can load: records with an id; the others are named."""
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and not is_blank(read_text(item.get("id"))):
            out.append(item)
        else:
            report.bad_record(table, excerpt(item), "no id: not loaded", loaded=False)
    return out


def _stopped(report: RunReport, table: str, exc: RateLimitError) -> None:
    """A list call met a rate limit, the quota or the run's budget: the table waits."""
    report.warn(f"{table}: not read this run: {exc.message}")
    report.wait(table, f"not read this run ({exc.message}); the next run reads it")


@dlt.source(name=NAME)
def meetric_partner(
    base_url: str = dlt.config.value,
    api_token: str = dlt.secrets.value,
    start_date: str | None = None,
    sweep_interval_hours: float = 24.0,
    include_recordings: bool = False,
    page_size: int = PAGE_SIZE_MAX,
    daily_conversation_quota: int = DAILY_CONVERSATION_QUOTA,
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
        http: client tuning (`[sources.meetric_partner.http]`).
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    if int(daily_conversation_quota) < 0:
        raise ConfigError(f"daily_conversation_quota={daily_conversation_quota} must be 0 (no counting) or more")
    start = parse_start_date(start_date)
    report = new_report(NAME)
    client = make_client(base_url, api_token, http, report)
    clock = _ServerClock(client)

    @dlt.resource(name="account", primary_key="id", write_disposition=MERGE)
    def account() -> Iterator[Any]:
        try:
            record = clock.read_account()
        except RateLimitError as exc:
            _stopped(report, "account", exc)
            return
        if record:
            yield changed_rows(dlt.current.resource_state(), [record])

    def people(table: str, scope: str) -> DltResource:
        @dlt.resource(name=table, primary_key="id", write_disposition=MERGE, columns=deleted_at_column())
        def listing() -> Iterator[Any]:
            try:
                body = client.get(table).body
                clock.observe(body)
                now = clock.now()
            except ScopeError as exc:
                report.skip(table, f"the token lacks the '{exc.scope or scope}' scope")
                return
            except RateLimitError as exc:
                _stopped(report, table, exc)
                return
            items = _with_ids(table, body.get(table) if isinstance(body, dict) else None, report)
            yield reconcile_snapshot(dlt.current.resource_state(), dlt.current.source_state(),
                                     table, items, now, report)

        return listing

    @dlt.resource(name="conversations", primary_key="id", write_disposition=MERGE)
    def conversations() -> Iterator[Any]:
        try:
            now = clock.now()
        except RateLimitError as exc:
            _stopped(report, "conversations", exc)
            return
        source_state = dlt.current.source_state()
        prune_tombstones(source_state, now)
        sync = ConversationSync(
            client, report, now=now, start_date=start, sweep_interval_hours=sweep_interval_hours,
            page_size=int(page_size), include_recordings=include_recordings,
            state=dlt.current.resource_state(), source_state=source_state,
            daily_quota=int(daily_conversation_quota))
        try:
            yield from sync.run()
        except ScopeError as exc:
            for table in SCOPE_TABLES["conversations"] + SCOPE_TABLES["transcripts"] + SCOPE_TABLES["insights"]:
                report.skip(table, f"the token lacks the '{exc.scope or 'conversations'}' scope")

    conversations.apply_hints(table_name="summaries", primary_key="conversation_id",
                              write_disposition=MERGE, create_table_variant=True, columns=_fresh(SUMMARY_COLUMNS))
    conversations.apply_hints(table_name=SEGMENTS, create_table_variant=True, **SEGMENT_HINTS)
    conversations.apply_hints(table_name="insights", primary_key="id", merge_key="conversation_id",
                              write_disposition=MERGE, create_table_variant=True, columns=_fresh(INSIGHT_COLUMNS))
    conversations.apply_hints(table_name="conversation_topics", primary_key=["conversation_id", "name"],
                              merge_key="conversation_id", write_disposition=MERGE,
                              create_table_variant=True, columns=_fresh(TOPIC_COLUMNS))
    conversations.apply_hints(table_name="recording_urls", primary_key="conversation_id",
                              write_disposition=MERGE, create_table_variant=True)
    # after the variants, which would otherwise inherit the column
    conversations.apply_hints(columns={**deleted_at_column(), **_fresh(CONVERSATION_COLUMNS)})

    @dlt.resource(name="webhook_deliveries", primary_key="id", write_disposition=MERGE)
    def webhook_deliveries() -> Iterator[Any]:
        try:
            body = client.get("webhooks/deliveries").body
        except RateLimitError as exc:
            _stopped(report, "webhook_deliveries", exc)
            return
        deliveries = _with_ids("webhook_deliveries", body.get("deliveries") if isinstance(body, dict) else None,
                               report)
        yield changed_rows(dlt.current.resource_state(), deliveries)

    return [account, people("users", "users"), people("teams", "teams"),
            people("departments", "departments"), conversations, webhook_deliveries]


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
        try:
            client.get(path)
            why = None
        except NotFoundError:
            why = None  # allowed: the probe id just does not exist
        except ScopeError as exc:
            why = f"needs the '{exc.scope or scope}' scope ({exc.message})"
        except MeetingEltError as exc:
            why = str(exc)
        for table in SCOPE_TABLES[scope]:
            access[table] = why
    client.close()
    return access


__all__ = ["meetric_partner", "check"]
