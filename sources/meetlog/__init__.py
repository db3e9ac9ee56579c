"""dlt source for the meetlog Export API (transcripts, reports, projects and their membership)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from .._common.config import HttpConfiguration, http_settings
from .._common.errors import AuthError, ConfigError, MeetingEltError, ScopeError
from .._common.http import ApiClient
from .._common.report import RunReport, new_report
from .._common.state import DELETED_AT_COLUMN, prune_tombstones
from .._common.timeutil import parse_start_date, utc_now
from .._common.token_pool import RotatingBearerAuth, parse_tokens
from .helpers import api_root, classify_error, scope_of_request
from .projects import ProjectSync
from .settings import (
    DEFAULT_BASE_URL,
    MEMBERSHIP_REMOVED,
    PACE_BURST,
    PACED_REQUESTS_PER_MINUTE,
    PAGE_SIZE_MAX,
    REPORT_DETAIL_FIELDS,
    SCOPE_TABLES,
    SCOPES,
    TRANSCRIPT_DETAIL_FIELDS,
)
from .sync import ListSync

NAME = "meetlog"
MERGE = {"disposition": "merge", "strategy": "delete-insert"}
# DuckDB loads parquet ~10x faster than insert statements; text and Markdown are the volume
FILE_FORMAT = "parquet"


def _timestamp() -> dict[str, Any]:
    return {"data_type": "timestamp", "nullable": True}


def _text() -> dict[str, Any]:
    return {"data_type": "text", "nullable": True}


# fresh dicts for every table: dlt writes into the column hints it is given
# documented types, declared: a first load whose first row carries a malformed value (a number
# sent as text) must not give the whole column that value's type
def transcript_columns() -> dict[str, Any]:
    return {"created_at": _timestamp(), "report_ids": {"data_type": "json", "nullable": True},
            "duration_seconds": {"data_type": "bigint", "nullable": True},
            "file_size_mb": {"data_type": "double", "nullable": True},
            "title": _text(), "status": _text(), "text": _text(), "summary": _text(),
            **copy.deepcopy(DELETED_AT_COLUMN)}


def report_columns() -> dict[str, Any]:
    return {"created_at": _timestamp(), "is_auto_generated": {"data_type": "bool", "nullable": True},
            "status": _text(), "content": _text(), **copy.deepcopy(DELETED_AT_COLUMN)}


def project_columns() -> dict[str, Any]:
    return {"created_at": _timestamp(), "updated_at": _timestamp(), **copy.deepcopy(DELETED_AT_COLUMN)}


def membership_columns() -> dict[str, Any]:
    return {"project_id": {"data_type": "text", "nullable": False},
            "transcript_id": {"data_type": "text", "nullable": False},
            MEMBERSHIP_REMOVED: {"data_type": "bool", "nullable": True, "hard_delete": True}}


def make_client(api_token: Any, base_url: str | None, http: HttpConfiguration | dict | None,
                report: RunReport) -> ApiClient:
    """One client over all the tokens: round-robin, each token paced to its own limit."""
    tokens = parse_tokens(api_token, "api_token", NAME)
    # at least one worker per token, or the tokens' combined pace cannot be reached
    settings = http_settings(http, requests_per_minute=PACED_REQUESTS_PER_MINUTE,
                             concurrency=max(4, len(tokens)))
    auth = RotatingBearerAuth(tokens, settings.requests_per_minute, scope_of=scope_of_request,
                              burst=PACE_BURST)
    # the pacing happens per token, in the auth; the client's own pacer only honours Retry-After
    unpaced = dataclasses.replace(settings, requests_per_minute=None)
    return ApiClient(api_root(base_url or DEFAULT_BASE_URL), auth, report, unpaced,
                     classify_error=classify_error)


def _skip(report: RunReport, exc: ScopeError, scope: str) -> None:
    scope = exc.scope or scope
    for table in SCOPE_TABLES.get(scope, []):
        report.skip(table, f"no token has the '{scope}' scope ({exc.message})")


@dlt.source(name=NAME)
def meetlog(
    api_token: str | list[str] | None = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    start_date: str | None = None,
    sweep_interval_hours: float = 24.0,
    page_size: int = PAGE_SIZE_MAX,
    http: HttpConfiguration | None = None,
) -> Sequence[DltResource]:
    """The meetlog Export API.

    Args:
        api_token: one `tk_live_…` token, a list of tokens of the same user, or a
            comma-separated string of them; requests are spread over the tokens, each
            paced to its own 60 requests a minute.
        base_url: the API host (or its `/api/v1/export` root).
        start_date: earliest `created_at` to load (transcripts and reports); default: all.
        sweep_interval_hours: hours between full reads of the lists, which catch renames,
            status changes and deletions (0: every run).
        page_size: items per list page, 1–100.
        http: client tuning (`[sources.meetlog.http]`); `requests_per_minute` is per token.
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    start = parse_start_date(start_date)
    report = new_report(NAME)
    client = make_client(api_token, base_url, http, report)
    now = utc_now()

    def list_sync(table: str, state: dict, source_state: dict) -> ListSync:
        return ListSync(
            client, report, table=table, path=table, state=state.setdefault(table, {}),
            source_state=source_state, now=now, start=start, sweep_interval_hours=sweep_interval_hours,
            page_size=int(page_size),
            detail_fields=TRANSCRIPT_DETAIL_FIELDS if table == "transcripts" else REPORT_DETAIL_FIELDS,
            parent_key="transcription_id" if table == "reports" else None)

    @dlt.resource(name="transcripts", primary_key="id", write_disposition=MERGE)
    def transcripts() -> Iterator[Any]:
        """Reports first (a new report makes its transcript's `report_ids` stale), then transcripts."""
        state, source_state = dlt.current.resource_state(), dlt.current.source_state()
        prune_tombstones(source_state, now)
        reports_sync = list_sync("reports", state, source_state)
        try:
            yield from reports_sync.run()
        except ScopeError as exc:
            _skip(report, exc, SCOPES["reports"])
        transcripts_sync = list_sync("transcripts", state, source_state)
        transcripts_sync.owe(reports_sync.new_parents)
        try:
            yield from transcripts_sync.run()
        except ScopeError as exc:
            _skip(report, exc, SCOPES["transcripts"])

    # both tables are variants, so that neither inherits the other's column hints
    transcripts.apply_hints(table_name="transcripts", primary_key="id", write_disposition=MERGE,
                            columns=transcript_columns(), file_format=FILE_FORMAT, create_table_variant=True)
    transcripts.apply_hints(table_name="reports", primary_key="id", write_disposition=MERGE,
                            columns=report_columns(), file_format=FILE_FORMAT, create_table_variant=True)

    @dlt.resource(name="projects", primary_key="id", write_disposition=MERGE)
    def projects() -> Iterator[Any]:
        sync = ProjectSync(client, report, state=dlt.current.resource_state(),
                           source_state=dlt.current.source_state(), now=now, page_size=int(page_size))
        try:
            yield from sync.run()
        except ScopeError as exc:
            _skip(report, exc, SCOPES["projects"])

    projects.apply_hints(table_name="projects", primary_key="id", write_disposition=MERGE,
                         columns=project_columns(), file_format=FILE_FORMAT, create_table_variant=True)
    projects.apply_hints(table_name="project_transcripts", primary_key=["project_id", "transcript_id"],
                         merge_key="project_id", write_disposition=MERGE, columns=membership_columns(),
                         file_format=FILE_FORMAT, create_table_variant=True)

    return [transcripts, projects]


def check(api_token: str | list[str] | None = dlt.secrets.value, base_url: str = DEFAULT_BASE_URL,
          http: HttpConfiguration | dict | None = None) -> dict[str, str | None]:
    """Verifies every token and lists the tables their scopes allow (3 list requests a token).

    Returns {table: None if some token may read it, else why not}. Raises AuthError
    naming the token's position (never the token) when one is refused.
    """
    tokens = parse_tokens(api_token, "api_token", NAME)
    report = new_report(NAME)
    settings = http_settings(http, requests_per_minute=PACED_REQUESTS_PER_MINUTE)
    unpaced = dataclasses.replace(settings, requests_per_minute=None)
    lacking: dict[str, list[int]] = {scope: [] for scope in SCOPES.values()}
    for position, token in enumerate(tokens, 1):
        # one token at a time, paced like a run (its burst covers the three probes)
        auth = RotatingBearerAuth([token], settings.requests_per_minute, burst=PACE_BURST)
        with ApiClient(api_root(base_url or DEFAULT_BASE_URL), auth, report, unpaced,
                       classify_error=classify_error) as client:
            for path, scope in SCOPES.items():
                try:
                    client.get(path, {"page": 1, "page_size": 1})
                except AuthError as exc:
                    raise AuthError(f"token {position} of {len(tokens)}: {exc.message}") from None
                except ScopeError:
                    lacking[scope].append(position)
                except MeetingEltError as exc:
                    raise MeetingEltError(f"token {position} of {len(tokens)}: {exc}") from None
    access: dict[str, str | None] = {}
    for scope, tables in SCOPE_TABLES.items():
        if len(lacking[scope]) == len(tokens):
            why = f"needs the '{scope}' scope, which no token has"
        else:
            why = None
            if lacking[scope]:
                report.warn(f"tokens {lacking[scope]} lack '{scope}'; the others read {', '.join(tables)}")
        for table in tables:
            access[table] = why
    return access


__all__ = ["meetlog", "check"]
