"""dlt source for the meetlog Export API (transcripts, reports, projects and their membership)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import dlt
from dlt.sources import DltResource

from .._common.config import HttpConfiguration, http_settings
from .._common.engine import (
    DEFAULT_CHECKPOINT_ITEMS,
    Action,
    Engine,
    SnapshotListing,
    TableSpec,
    chained_resources,
    checkpoint_items_setting,
    entity_resources,
    tolerate,
)
from .._common.errors import ConfigError, MeetingEltError
from .._common.http import ApiClient
from .._common.ledger import EntityLedger
from .._common.report import RunReport, new_report
from .._common.tables import MERGE, deleted_at_column
from .._common.timeutil import parse_start_date, utc_now
from .._common.token_pool import RotatingBearerAuth, parse_tokens
from .entities import (
    listed_entity,
    listed_table,
    member_rows,
    project_entity,
    transcript_of,
    transcripts_refetch,
)
from .helpers import api_root, classify_error, scope_of_request
from .listing import NewestFirstListing, whole_list
from .settings import (
    DEFAULT_BASE_URL,
    MEMBERSHIP_REMOVED,
    PACE_BURST,
    PACED_REQUESTS_PER_MINUTE,
    PAGE_SIZE_MAX,
    SCOPE_TABLES,
    SCOPES,
)

NAME = "meetlog"
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
            **deleted_at_column()}


def report_columns() -> dict[str, Any]:
    return {"created_at": _timestamp(), "is_auto_generated": {"data_type": "bool", "nullable": True},
            "status": _text(), "content": _text(), **deleted_at_column()}


def project_columns() -> dict[str, Any]:
    return {"created_at": _timestamp(), "updated_at": _timestamp(), **deleted_at_column()}


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


def _hints(columns: dict[str, Any], key: Any = "id", **more: Any) -> dict[str, Any]:
    return {"primary_key": key, "write_disposition": MERGE, "columns": columns, "file_format": FILE_FORMAT,
            **more}


@dlt.source(name=NAME)
def meetlog(
    api_token: str | list[str] | None = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    start_date: str | None = None,
    sweep_interval_hours: float = 24.0,
    page_size: int = PAGE_SIZE_MAX,
    checkpoint_items: int = DEFAULT_CHECKPOINT_ITEMS,
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
        checkpoint_items: records fetched per load (their per-item calls): a run that reaches
            it stops cleanly and loads what it fetched with its state; `meeting-elt run` goes
            on at once in a new load, a scheduled `pipeline.run` in its next run (0: off).
        http: client tuning (`[sources.meetlog.http]`); `requests_per_minute` is per token.
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    start = parse_start_date(start_date)
    checkpoint = checkpoint_items_setting(checkpoint_items)
    report = new_report(NAME)
    client = make_client(api_token, base_url, http, report)
    now = utc_now()

    def newest_first(path: str) -> Any:
        def listing(book: EntityLedger) -> NewestFirstListing:
            return NewestFirstListing(book, client, report, path=path, start=start, page_size=int(page_size),
                                      sweep_interval_hours=float(sweep_interval_hours), now=now)

        return listing

    def engine(entity: Any, listing: Any) -> Engine:
        return Engine(entity, listing, client=client, report=report, now=lambda: now, checkpoint_items=checkpoint)

    # reports run first: one added to (or deleted from) a transcript makes its detail owed again
    reports = engine(listed_entity("reports", client, parent_of=transcript_of, parent_changed=transcripts_refetch),
                     newest_first("reports"))
    transcripts = engine(listed_entity("transcripts", client), newest_first("transcripts"))
    # projects whose membership an earlier run loaded, read when the run starts (before this
    # run settles any): only their emptied membership needs a hard-delete marker row
    members_loaded: set[str] = set()

    def project_listing(book: EntityLedger) -> SnapshotListing:
        members_loaded.clear()
        members_loaded.update(pid for pid in book.ids() if "members" in (book.get(pid) or {}).get("done", {}))
        return SnapshotListing(whole_list(client, "projects", int(page_size)))

    projects = engine(project_entity(client, report), project_listing)
    return [
        *chained_resources("transcripts_feed", [
            (reports, [listed_table("reports", report, _hints(report_columns()))]),
            (transcripts, [listed_table("transcripts", report, _hints(transcript_columns()))]),
        ], report),
        *entity_resources(projects, [
            TableSpec("projects", hints=_hints(project_columns())),
            TableSpec("project_transcripts", part="members", shape=member_rows(report, members_loaded),
                      hints=_hints(membership_columns(), ["project_id", "transcript_id"], merge_key="project_id")),
        ], report),
    ]


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
                # what an error means is the engine's table; a refused scope is an answer here
                with tolerate(Action.ABORT, Action.SKIP, Action.STOP, Action.NOT_FOUND, Action.RETRY) as failed:
                    client.get(path, {"page": 1, "page_size": 1})
                if failed.action is Action.SKIP:
                    lacking[scope].append(position)
                elif failed.error is not None:  # named by position, never by the token
                    kind = type(failed.error) if failed.action is Action.ABORT else MeetingEltError
                    raise kind(f"token {position} of {len(tokens)}: {failed.error.message}",
                               status=failed.error.status) from None
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
