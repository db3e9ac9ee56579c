"""dlt source for the Meemo external API (organizations, meetings with their transcripts, summaries, participants and recordings, topics, webhooks, usage, upcoming calendar meetings)."""

from __future__ import annotations

import contextlib
import email.utils
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from .._common.auth import OAuth2ClientCredentials
from .._common.config import HttpConfiguration, http_settings, require
from .._common.engine import (
    DEFAULT_CHECKPOINT_ITEMS,
    Action,
    Engine,
    TableSpec,
    checkpoint_items_setting,
    entity_resources,
    tolerate,
)
from .._common.errors import ConfigError
from .._common.http import ApiClient
from .._common.ledger import EntityLedger
from .._common.records import read_int
from .._common.report import RunReport, new_report
from .._common.snapshots import snapshot_resources
from .._common.tables import MERGE, deleted_at_column
from .._common.timeutil import parse_start_date, utc_now
from .._common.transcripts import HINTS as SEGMENT_HINTS
from .._common.transcripts import TABLE as SEGMENTS
from .entities import (
    UPCOMING_TABLE,
    MeetingCalls,
    WebhookCalls,
    conformed,
    event_entity,
    group_of,
    instant_of,
    meeting_entity,
    meeting_specs,
    usage_entity,
    webhook_entity,
    webhook_specs,
)
from .helpers import classify_error
from .listing import (
    EventListing,
    MeetingListing,
    UpcomingLists,
    UsageListing,
    WebhookListing,
    WebhookLog,
    topic_lists,
    usage_key,
)
from .settings import (
    COLUMN_TYPES,
    DEFAULT_BASE_URL,
    MARKED_TABLES,
    MEETINGS,
    ORGANIZATIONS,
    PAGE_SIZE_MAX,
    PRIMARY_KEYS,
    TOKEN_PATH,
    TOKEN_REFRESH_MARGIN_SECONDS,
    TOPICS,
    UPCOMING,
    USAGE,
    WEBHOOKS,
)

NAME = "meemo"
MEETING_TABLES = ["meetings", "transcripts", SEGMENTS, "summaries", "participants", "recordings"]
TABLES = [*MEETING_TABLES, "organizations", "topics", "webhooks", "webhook_events", "usage", "upcoming_meetings"]


def columns(table: str, *, deleted_at: bool = False) -> dict[str, dict]:
    """Typed column hints of `table` (fresh dicts each time: dlt writes names into them)."""
    hints = {name: {"data_type": kind, "nullable": True} for name, kind in COLUMN_TYPES[table].items()}
    return {**hints, **(deleted_at_column() if deleted_at else {})}


def table_hints() -> dict[str, dict]:
    """Key, write disposition and columns of every table (fresh for each source instance)."""
    hints = {table: {"primary_key": key, "write_disposition": MERGE,
                     "columns": columns(table, deleted_at=table in MARKED_TABLES)}
             for table, key in PRIMARY_KEYS.items()}
    hints["participants"]["merge_key"] = "meeting_id"  # a meeting's list replaces its old one whole
    hints[SEGMENTS] = dict(SEGMENT_HINTS, columns={k: dict(v) for k, v in SEGMENT_HINTS["columns"].items()})
    return hints


def make_client(base_url: str | None, client_id: str, client_secret: str,
                http: HttpConfiguration | dict | None, report: RunReport) -> ApiClient:
    """An API client whose OAuth token is fetched once, reused, and renewed before expiry or on a 401."""
    require(client_id, "client_id", NAME, secret=True)
    require(client_secret, "client_secret", NAME, secret=True)
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    settings = http_settings(http)
    # the token endpoint gets the same retries, pacing and request count as the API
    token_client = ApiClient(base, None, report, settings)
    auth = OAuth2ClientCredentials(
        f"{base}/{TOKEN_PATH}", client_id, client_secret,
        post_form=lambda url, form: token_client.request("POST", url, data=form).body,
        refresh_margin_seconds=TOKEN_REFRESH_MARGIN_SECONDS)
    return ApiClient(base, auth, report, settings, classify_error=classify_error)


def parse_organization_ids(value: Any) -> list[int] | None:
    """`organization_ids` as a list of ints; accepts a list, one id, or "12,34"."""
    if value in (None, "", []):
        return None
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else [value]
    ids = [read_int(str(v).strip()) for v in items if str(v).strip()]
    if any(i is None for i in ids):
        raise ConfigError(f"organization_ids={value!r} must be a list of integer ids",
                          hint="e.g. organization_ids = [12, 34] in .dlt/config.toml")
    return [i for i in ids if i is not None]


class Organizations:
    """The organizations this run reads: all the application may read, or the ones listed.

    The first answer's `Date` header gives the API's own time, on which day cursors and
    usage months are computed.
    """

    def __init__(self, client: ApiClient, report: RunReport, wanted: list[int] | None) -> None:
        self.client, self.report, self.wanted = client, report, wanted
        self._available: list[dict] | None = None
        self.now = utc_now()

    def available(self) -> list[dict]:
        if self._available is None:
            answer = self.client.get(ORGANIZATIONS)
            date_header = answer.headers.get("Date")
            if date_header:
                with contextlib.suppress(TypeError, ValueError):
                    self.now = email.utils.parsedate_to_datetime(date_header).astimezone(UTC)
            body = answer.body if isinstance(answer.body, list) else []
            self._available = [o for o in body if isinstance(o, dict) and o.get("id") is not None]
            if not self._available:
                self.report.warn("the application may read no organization: nothing to load")
            if self.wanted:
                missing = sorted(set(self.wanted) - {o["id"] for o in self._available})
                if missing:
                    self.report.warn(f"organization_ids {missing} are not available to this application; "
                                     "they are skipped")
        return self._available

    def selected(self) -> list[dict]:
        return [o for o in self.available() if not self.wanted or o["id"] in self.wanted]

    def ids(self) -> list[int]:
        return [o["id"] for o in self.selected()]

    def rows(self) -> list[dict]:
        """The `organizations` rows: the selected organizations."""
        return [{**o, "organization_id": o["id"]} for o in self.selected()]

    def unselected(self) -> set[str]:
        """Ids of organizations available but not selected: their rows are kept as they are."""
        return {str(o["id"]) for o in self.available()} - {str(i) for i in self.ids()}

    def clock(self) -> datetime:
        """The API's time (read from the organizations' answer, fetched first if need be)."""
        self.available()
        return self.now



@dlt.source(name=NAME)
def meemo(
    client_id: str = dlt.secrets.value,
    client_secret: str = dlt.secrets.value,
    base_url: str = DEFAULT_BASE_URL,
    organization_ids: list[int] | None = None,
    start_date: str | None = None,
    sweep_interval_hours: float = 24.0,
    include_recordings: bool = False,
    page_size: int = PAGE_SIZE_MAX,
    checkpoint_items: int = DEFAULT_CHECKPOINT_ITEMS,
    http: HttpConfiguration | None = None,
) -> Sequence[DltResource]:
    """The Meemo external API, for every organization the application may read.

    Args:
        client_id: the OAuth 2 client id of the Meemo application.
        client_secret: its client secret.
        base_url: the API host.
        organization_ids: organizations to load (default: every available one).
        start_date: earliest meeting creation day to load (default: all).
        sweep_interval_hours: hours between full sweeps of the meeting lists (0: every run).
        include_recordings: also load `recordings` (signed URLs; one call per meeting).
        page_size: items per list page, 1–100.
        checkpoint_items: records fetched per load (their per-item calls): a run that reaches
            it stops cleanly and loads what it fetched with its state; `meeting-elt run` goes
            on at once in a new load, a scheduled `pipeline.run` in its next run (0: off).
        http: client tuning (`[sources.meemo.http]`).
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    start = parse_start_date(start_date)
    checkpoint = checkpoint_items_setting(checkpoint_items)
    start_day = start.date() if start else None
    interval, size = float(sweep_interval_hours), int(page_size)
    report = new_report(NAME)
    client = make_client(base_url, client_id, client_secret, http, report)
    orgs = Organizations(client, report, parse_organization_ids(organization_ids))
    hints = table_hints()

    def engine(entity: Any, listing: Any) -> Engine:
        return Engine(entity, listing, client=client, report=report, now=orgs.clock, checkpoint_items=checkpoint)

    organizations = snapshot_resources(
        name="organizations", fetch=orgs.rows, client=client, report=report, now=orgs.clock,
        covers=lambda record_id, entry: record_id not in orgs.unselected(), hints=hints["organizations"])

    calls = MeetingCalls(client)
    meetings = engine(meeting_entity(calls), lambda book: MeetingListing(
        book, client, report, orgs=orgs.ids(), now=orgs.clock(), start_day=start_day,
        sweep_interval_hours=interval, page_size=size))
    calls.engine = meetings

    snapshot: dict[str, Any] = {"client": client, "report": report, "now": orgs.clock, "group": group_of}
    topics = topic_lists(client, report, orgs)
    upcoming = UpcomingLists(client, report, orgs)
    usage = engine(usage_entity(usage_key), lambda book: UsageListing(book, client, report, orgs=orgs.ids(),
                                                                      now=orgs.clock(), start_day=start_day))

    log = WebhookLog(client, report, orgs, size)
    hook_calls = WebhookCalls(client)

    def webhook_listing(book: EntityLedger) -> WebhookListing:
        hook_calls.listing = WebhookListing(book, log, now=orgs.clock(), sweep_interval_hours=interval)
        return hook_calls.listing

    webhooks = engine(webhook_entity(hook_calls), webhook_listing)
    events = engine(event_entity(), lambda book: EventListing(book, log))

    return [
        *organizations,
        *entity_resources(meetings, meeting_specs(report, hints, include_recordings=include_recordings), report),
        *snapshot_resources(name="topics", fetch=topics.fetch, covers=topics.covers, hints=hints["topics"],
                            **snapshot),
        *entity_resources(webhooks, webhook_specs(report, hints), report),
        *entity_resources(events, [_list_table("webhook_events", hints)], report),
        *entity_resources(usage, [_list_table("usage", hints)], report),
        *snapshot_resources(name=UPCOMING_TABLE, fetch=upcoming.fetch, covers=upcoming.covers, keep_days=0,
                            day=lambda event: instant_of(event.get("start_time")),
                            row=conformed(report, UPCOMING_TABLE), hints=hints[UPCOMING_TABLE], **snapshot),
    ]


def _list_table(name: str, hints: dict[str, dict]) -> TableSpec:
    return TableSpec(name, hints=hints[name])


def check(client_id: str, client_secret: str, base_url: str = DEFAULT_BASE_URL,
          organization_ids: list[int] | None = None,
          http: HttpConfiguration | dict | None = None) -> dict[str, str | None]:
    """Verifies the client credentials and probes each endpoint with one small request.

    Returns {table: None if loadable, else why not}. Raises AuthError for bad credentials.
    """
    report = new_report(NAME)
    client = make_client(base_url, client_id, client_secret, http, report)
    orgs = Organizations(client, report, parse_organization_ids(organization_ids))
    ids = orgs.ids()
    if not ids:
        why = "the application may read none of the requested organizations"
        return dict.fromkeys(TABLES, why)
    org = ids[0]
    today = orgs.now.date().isoformat()
    probes = {tuple(MEETING_TABLES): (MEETINGS, {"organization_id": org, "size": 1}),
              ("topics",): (TOPICS, {"organization_id": org}),
              ("webhooks", "webhook_events"): (WEBHOOKS, {"size": 1}),
              ("usage",): (USAGE, {"organization_id": org, "start_date": today, "end_date": today}),
              ("upcoming_meetings",): (UPCOMING, {"organization_id": org, "limit": 1})}
    access: dict[str, str | None] = {"organizations": None}
    for tables, (path, params) in probes.items():
        with tolerate(Action.SKIP, Action.NOT_FOUND, Action.STOP, Action.RETRY) as refused:
            client.get(path, params)  # a wrong credential (ABORT) is raised
        for table in tables:
            access[table] = None if refused.error is None else str(refused.error)
    client.close()
    return access


__all__ = ["meemo", "check"]
