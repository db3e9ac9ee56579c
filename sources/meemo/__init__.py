"""dlt source for the Meemo external API (organizations, meetings with their transcripts, summaries, participants and recordings, topics, webhooks, usage, upcoming calendar meetings)."""

from __future__ import annotations

import contextlib
import email.utils
from collections.abc import Iterator, Sequence
from datetime import UTC
from typing import Any

import dlt
from dlt.sources import DltResource

from .._common.auth import OAuth2ClientCredentials
from .._common.config import HttpConfiguration, http_settings, require
from .._common.errors import ConfigError, MeetingEltError, NotFoundError, RateLimitError, ScopeError
from .._common.http import ApiClient
from .._common.report import RunReport, new_report
from .._common.state import DELETED_AT_COLUMN, mark_swept, prune_tombstones, sweep_due
from .._common.timeutil import iso, parse_start_date, utc_now
from .._common.transcripts import HINTS as SEGMENT_HINTS
from .._common.transcripts import TABLE as SEGMENTS
from .account import (
    event_status,
    list_all,
    org_snapshot,
    upcoming_snapshot,
    usage_months,
    usage_rows,
    webhook_events,
    webhook_rows,
)
from .helpers import classify_error, flag, without_secrets
from .meetings import MeetingSync
from .settings import (
    COLUMN_TYPES,
    DEFAULT_BASE_URL,
    MEETINGS,
    ORGANIZATIONS,
    PAGE_SIZE_MAX,
    TOKEN_PATH,
    TOKEN_REFRESH_MARGIN_SECONDS,
    TOPICS,
    UPCOMING,
    UPCOMING_LIMIT,
    USAGE,
    WEBHOOKS,
)

NAME = "meemo"
MERGE = {"disposition": "merge", "strategy": "delete-insert"}


def columns(table: str, *, deleted_at: bool = False) -> dict[str, dict]:
    """Typed column hints of `table` (fresh dicts each time: dlt writes names into them)."""
    hints = {name: {"data_type": kind, "nullable": True} for name, kind in COLUMN_TYPES[table].items()}
    return {**hints, **({"deleted_at": dict(DELETED_AT_COLUMN["deleted_at"])} if deleted_at else {})}


MEETING_TABLES = ["meetings", "transcripts", SEGMENTS, "summaries", "participants", "recordings"]


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
    try:
        return [int(str(v).strip()) for v in items if str(v).strip()]
    except ValueError:
        raise ConfigError(f"organization_ids={value!r} must be a list of integer ids",
                          hint="e.g. organization_ids = [12, 34] in .dlt/config.toml") from None


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
        http: client tuning (`[sources.meemo.http]`).
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    start = parse_start_date(start_date)
    start_day = start.date() if start else None
    report = new_report(NAME)
    client = make_client(base_url, client_id, client_secret, http, report)
    orgs = Organizations(client, report, parse_organization_ids(organization_ids))
    size = int(page_size)

    @dlt.resource(name="organizations", primary_key="id", write_disposition=MERGE,
                  columns=columns("organizations", deleted_at=True))
    def organizations() -> Iterator[Any]:
        available = orgs.available()
        if not available:
            return
        state = dlt.current.resource_state()
        known = set(state.get("hashes", {}))
        unselected = {str(o["id"]) for o in available} - {str(i) for i in orgs.ids()}
        scanned = [int(k) for k in known - unselected]
        rows = [{**o, "organization_id": o["id"]} for o in orgs.selected()]
        yield org_snapshot(state, dlt.current.source_state(), "organizations", rows, scanned,
                           orgs.now, report, refuse_empty=False)

    @dlt.resource(name="meetings", primary_key="id", write_disposition=MERGE)
    def meetings() -> Iterator[Any]:
        ids = orgs.ids()
        source_state = dlt.current.source_state()
        prune_tombstones(source_state, orgs.now)
        sync = MeetingSync(client, report, orgs=ids, now=orgs.now, start_day=start_day,
                           sweep_interval_hours=sweep_interval_hours, page_size=size,
                           include_recordings=include_recordings, state=dlt.current.resource_state(),
                           source_state=source_state)
        yield from sync.run()

    meetings.apply_hints(table_name="transcripts", primary_key="meeting_id", write_disposition=MERGE,
                         columns=columns("transcripts"), create_table_variant=True)
    meetings.apply_hints(table_name=SEGMENTS, create_table_variant=True, **SEGMENT_HINTS)
    meetings.apply_hints(table_name="summaries", primary_key="meeting_id", write_disposition=MERGE,
                         columns=columns("summaries"),
                         create_table_variant=True)
    meetings.apply_hints(table_name="participants", primary_key=["meeting_id", "participant_index"],
                         merge_key="meeting_id", write_disposition=MERGE, columns=columns("participants"),
                         create_table_variant=True)
    meetings.apply_hints(table_name="recordings", primary_key="meeting_id", write_disposition=MERGE,
                         columns=columns("recordings"), create_table_variant=True)
    # after the variants, which would otherwise inherit these columns
    meetings.apply_hints(columns=columns("meetings", deleted_at=True))

    @dlt.resource(name="topics", primary_key="id", write_disposition=MERGE,
                  columns=columns("topics", deleted_at=True))
    def topics() -> Iterator[Any]:
        rows: dict[str, dict] = {}
        scanned = []
        for org in orgs.ids():
            try:
                body = client.get(TOPICS, {"organization_id": org}).body
            except ScopeError as exc:
                report.warn(f"organization {org}: topics not loaded: {exc.message}")
                continue
            except RateLimitError as exc:
                report.wait("topics", f"stopped: {exc.message}")
                break
            scanned.append(org)
            for topic in body if isinstance(body, list) else []:
                if not isinstance(topic, dict) or topic.get("id") is None:
                    report.warn(f"organization {org}: skipped a malformed topic: {str(topic)[:200]}")
                    continue
                rows.setdefault(str(topic["id"]), {**topic, "organization_id": org})
        yield org_snapshot(dlt.current.resource_state(), dlt.current.source_state(), "topics",
                           list(rows.values()), scanned, orgs.now, report)

    @dlt.resource(name="webhooks", primary_key="id", write_disposition=MERGE)
    def webhooks() -> Iterator[Any]:
        """The webhook list, then each webhook's delivery log; a webhook's detail (its
        `failure_count`) is read when the listing shows it new or changed, when new failed
        deliveries arrived for it, and for every webhook on a sweep."""
        selected = set(orgs.ids())
        if not selected:
            return
        rows = []
        try:
            pages = list(list_all(client, WEBHOOKS, size))
        except RateLimitError as exc:
            report.wait("webhooks", f"stopped: {exc.message}")
            return
        for page in pages:
            for hook in page:
                if not isinstance(hook, dict) or hook.get("id") is None:
                    report.warn(f"skipped a malformed webhook: {str(without_secrets(hook) if isinstance(hook, dict) else hook)[:200]}")
                    continue
                org = hook.get("organization_id")
                if org in selected or (org is None and not orgs.wanted):
                    rows.append(without_secrets(hook))
        state = dlt.current.resource_state()
        changed = org_snapshot(state, dlt.current.source_state(), "webhooks", rows, selected, orgs.now, report)
        events_state = state.setdefault("events", {})
        new_events, failing = [], set()
        for hook in rows:
            try:
                events = webhook_events(client, report, hook, events_state, size)
            except NotFoundError:
                continue  # deleted since it was listed
            except RateLimitError as exc:
                report.wait("webhook_events", f"stopped: {exc.message}")
                break
            new_events += [without_secrets(e) for e in events]
            if any(event_status(e) == "failed" for e in events):
                failing.add(str(hook["id"]))
        sweep = sweep_due(state, sweep_interval_hours, orgs.now)
        wanted = {str(h["id"]) for h in (rows if sweep else changed)} | failing
        loaded, complete = webhook_rows(client, report, rows, changed, wanted, state)
        if loaded:
            yield loaded
        if sweep and complete:
            mark_swept(state, orgs.now)
        if new_events:
            yield dlt.mark.with_table_name(new_events, "webhook_events")

    webhooks.apply_hints(table_name="webhook_events", primary_key="id", write_disposition=MERGE,
                         columns=columns("webhook_events"), create_table_variant=True)
    webhooks.apply_hints(columns=columns("webhooks", deleted_at=True))  # after the variant

    @dlt.resource(name="usage", primary_key=["organization_id", "capability_name", "period_start"],
                  write_disposition=MERGE, columns=columns("usage"))
    def usage() -> Iterator[Any]:
        state = dlt.current.resource_state().setdefault("orgs", {})
        for org in orgs.ids():
            org_state = state.setdefault(str(org), {})
            try:
                rows = usage_rows(client, report, org, usage_months(org_state, orgs.now, start_day), org_state)
            except ScopeError as exc:
                report.warn(f"organization {org}: usage not loaded: {exc.message}")
                continue
            except RateLimitError as exc:
                report.wait("usage", f"stopped: {exc.message}")
                break
            org_state["read_through"] = iso(orgs.now)
            if rows:
                yield rows

    @dlt.resource(name="upcoming_meetings", primary_key="id", write_disposition=MERGE,
                  columns=columns("upcoming_meetings", deleted_at=True))
    def upcoming_meetings() -> Iterator[Any]:
        """Upcoming events of the organizations' connected calendars (one call each)."""
        rows, scanned, integrated = [], [], False
        for org in orgs.ids():
            try:
                body = client.get(UPCOMING, {"organization_id": org, "limit": UPCOMING_LIMIT}).body
            except NotFoundError as exc:
                report.skip("upcoming_meetings", f"this Meemo build has no calendar/upcoming-meetings/ ({exc.message})")
                return
            except ScopeError as exc:
                report.warn(f"organization {org}: upcoming meetings not loaded: {exc.message}")
                continue
            except RateLimitError as exc:
                report.wait("upcoming_meetings", f"stopped: {exc.message}")
                break
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                report.warn(f"organization {org}: upcoming meetings in an unknown shape: {str(body)[:200]}")
                continue
            if flag(body.get("integrated")) is False:
                continue  # no calendar connected: nothing listed, nothing to compare
            integrated = True
            if len(results) < UPCOMING_LIMIT:  # a list cut at the limit cannot tell what left it
                scanned.append(org)
            for event in results:
                if not isinstance(event, dict) or event.get("id") is None:
                    report.warn(f"organization {org}: skipped a malformed upcoming meeting: {str(event)[:200]}")
                    continue
                rows.append({**event, "organization_id": event.get("organization_id") or org})
        if not integrated and not rows and orgs.ids():
            report.skip("upcoming_meetings", "no organization has a calendar connected (integrated: false)")
        changed = upcoming_snapshot(dlt.current.resource_state(), dlt.current.source_state(), rows, scanned,
                                    orgs.now, report)
        if changed:
            yield changed

    return [organizations, meetings, topics, webhooks, usage, upcoming_meetings]


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
        return {t: why for t in [*MEETING_TABLES, "organizations", "topics", "webhooks",
                                 "webhook_events", "usage", "upcoming_meetings"]}
    org = ids[0]
    today = orgs.now.date().isoformat()
    probes = {tuple(MEETING_TABLES): (MEETINGS, {"organization_id": org, "size": 1}),
              ("topics",): (TOPICS, {"organization_id": org}),
              ("webhooks", "webhook_events"): (WEBHOOKS, {"size": 1}),
              ("usage",): (USAGE, {"organization_id": org, "start_date": today, "end_date": today}),
              ("upcoming_meetings",): (UPCOMING, {"organization_id": org, "limit": 1})}
    access: dict[str, str | None] = {"organizations": None}
    for tables, (path, params) in probes.items():
        try:
            client.get(path, params)
            why = None
        except MeetingEltError as exc:
            why = str(exc)
        for table in tables:
            access[table] = why
    client.close()
    return access


__all__ = ["meemo", "check"]
