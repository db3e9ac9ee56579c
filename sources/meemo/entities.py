"""Meemo on the engine: what each meeting version owes, the per-meeting calls, and the rows.

A meeting whose list item is new or changed owes its detail and its participants (the
`meetings` row is the list item plus the detail, so deletions are marked there). Its
transcript, summary (with what summary-with-video/ adds, one more call with each summary
(re)load) and recording are owed once their stage is `completed`, once per completion: a
stage that runs again is fetched again (`Part.rearm`). Meetings of older builds carry no
stage objects: their transcript (and recording) is owed once the meeting is `past`, their
summary once `summary_complete`. Such a transcript answers an empty list until it is done,
so an empty one is not final while the summary is not complete: it is asked again after
growing intervals (`RECHECK_*`) for `RECHECK_FOR` after the meeting was created, then once
the summary completes. Participants and recordings load only when their content changed
(`Part.digest`): a new signed URL alone never makes a recording row change.

Webhooks: the row is the list item plus `failure_count` and `last_failure_reason`, which only
the detail has (`WebhookListing.detail_version` says when it is read again); the signing
secret is dropped before anything is stored. Webhook events, topics, upcoming meetings,
organizations and usage are list rows, loaded when their content changed.
"""

from __future__ import annotations

from typing import Any

from .._common.engine import (
    Action,
    Engine,
    Entity,
    Fetched,
    NotFound,
    Part,
    Ready,
    TableSpec,
    Work,
    tolerate,
)
from .._common.errors import MeetingEltError
from .._common.http import ApiClient
from .._common.ledger import row_hash
from .._common.records import Problems, is_blank, read_instant, read_text, report_problems
from .._common.report import RunReport
from .._common.timeutil import iso
from .._common.transcripts import TABLE as SEGMENTS
from .._common.transcripts import segments_table
from . import helpers as h
from .listing import WebhookListing
from .settings import (
    DETAIL_BATCH,
    MEETINGS,
    RECHECK_FIRST,
    RECHECK_FOR,
    RECHECK_MAX_INTERVAL,
    STAGE_DONE,
    SUMMARY_WITH_VIDEO,
    WEBHOOKS,
)

UPCOMING_TABLE = "upcoming_meetings"


def key_of(item: Any) -> str | None:
    """A record's id as text (`id` is an integer at the API); None when it has none."""
    value = read_text(item.get("id")) if isinstance(item, dict) else None
    return None if is_blank(value) else value


def group_of(item: dict) -> str | None:
    org = item.get("organization_id")
    return None if org is None else str(org)


def organization(work: Work) -> Any:
    """The organization a meeting's rows belong to (the one it was listed for)."""
    return h.vendor_id(work.group) if work.group is not None else None


def _object(client: ApiClient, path: str) -> dict:
    body = client.get(path).body
    if not isinstance(body, dict):
        raise MeetingEltError(f"expected an object, got {type(body).__name__}", url=path)
    return body


# ---------------------------------------------------------------------- meetings
class MeetingCalls:
    """The per-meeting calls (each runs in a worker thread) and what their answers mean."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.engine: Engine | None = None

    def _get(self, work: Work, part: str = "") -> dict:
        return _object(self.client, f"{MEETINGS}{work.record_id}/{part}")

    def call(self, part: str) -> Any:
        """The fetch of `meeting/{id}/<part>` (the detail for "")."""
        return lambda work: self._get(work, part)

    def summary(self, work: Work) -> dict:
        """summary/, then summary-with-video/: one more request with every summary (re)load.
        A build without that endpoint (404) or a refusal (403) loads the summary alone; any
        other failure fails the part, so both are asked again."""
        summary = self._get(work, "summary/")
        video: Any = None
        with tolerate(Action.NOT_FOUND, Action.SKIP):
            video = self.client.get(f"{MEETINGS}{work.record_id}/{SUMMARY_WITH_VIDEO}").body
        return {"summary": summary, "video": video if isinstance(video, dict) else None}

    def judge_transcript(self, work: Work, body: dict) -> Ready:
        """An older build's empty transcript is not final while the summary is not complete:
        asked again with back-off while the meeting is younger than `RECHECK_FOR`, then once
        the summary completes (its version moves to final)."""
        if h.served_segments(body) or work.parts.get("transcript") != h.TRANSCRIPT_PENDING:
            return Ready.READY
        created = read_instant(work.day)
        now = self.engine.now if self.engine is not None else None
        if created is not None and now is not None and now - created <= RECHECK_FOR:
            return Ready.NOT_READY
        return Ready.NONE


def meeting_wants(item: dict) -> tuple[list[str], bool]:
    parts = ["detail", "participants"]  # with every change of the list item
    if h.transcript_ready(item):
        parts.append("transcript")
    if h.summary_ready(item):
        parts.append("summary")
    if h.recording_ready(item):
        parts.append("recording")  # fetched only while `recordings` is a table of the run
    return parts, h.unfinished(item)


def meeting_entity(calls: MeetingCalls) -> Entity:
    once_done = lambda item: STAGE_DONE  # noqa: E731 - once per completion of the stage (rearm)
    return Entity(
        name="meetings", table=None, marked_table="meetings",
        key=key_of, version=row_hash, day=lambda item: h.day_of(item.get("created_at")),
        group=group_of, wants=meeting_wants, batch=DETAIL_BATCH,
        parts=(
            Part("detail", ("meetings",), fetch=calls.call(""), not_found=NotFound.DELETED),
            Part("participants", ("participants",), fetch=calls.call("participants/"),
                 digest=lambda body: row_hash(body.get("participants"))),
            Part("transcript", (SEGMENTS, "transcripts"), fetch=calls.call("transcript/"), judge=calls.judge_transcript,
                 version=h.transcript_version, rearm=True, digest=row_hash,
                 retry_first=RECHECK_FIRST, retry_cap=RECHECK_MAX_INTERVAL),
            Part("summary", ("summaries",), fetch=calls.summary, version=once_done, rearm=True),
            Part("recording", ("recordings",), fetch=calls.call("recording/"), version=once_done, rearm=True,
                 digest=h.recording_hash),
        ),
    )


def meeting_specs(report: RunReport, hints: dict[str, dict], *, include_recordings: bool) -> list[TableSpec]:
    def meeting(f: Fetched) -> list[dict]:
        problems = Problems()
        row = h.meeting_row(f.work.item, f.bodies["detail"], organization(f.work), problems)
        report_problems(report, "meetings", f.work.record_id, problems)
        return [row]

    def summary(f: Fetched) -> list[dict]:
        problems, body = Problems(), f.bodies["summary"]
        row = h.summary_row(h.vendor_id(f.work.record_id), organization(f.work), body["summary"], problems,
                            body["video"])
        report_problems(report, "summaries", f.work.record_id, problems)
        return [row]

    def transcript(f: Fetched, named: bool) -> tuple[list[dict], dict]:
        return h.transcript_rows(h.vendor_id(f.work.record_id), organization(f.work), f.bodies["transcript"],
                                 report if named else None)

    specs = [
        TableSpec("meetings", part="detail", shape=meeting, hints=hints["meetings"]),
        TableSpec("participants", part="participants", hints=hints["participants"],
                  shape=lambda f: h.participant_rows(h.vendor_id(f.work.record_id), organization(f.work),
                                                     f.bodies["participants"])),
        TableSpec(SEGMENTS, part="transcript", shape=lambda f: transcript(f, True)[0],
                  finish=lambda rows: segments_table(rows, report), hints=hints[SEGMENTS]),
        TableSpec("transcripts", part="transcript", shape=lambda f: [transcript(f, False)[1]],
                  hints=hints["transcripts"]),
        TableSpec("summaries", part="summary", shape=summary, hints=hints["summaries"]),
    ]
    if include_recordings:  # otherwise the recording calls stay owed, for a run that asks
        specs.append(TableSpec("recordings", part="recording", hints=hints["recordings"],
                               shape=lambda f: [h.recording_row(h.vendor_id(f.work.record_id), organization(f.work),
                                                                f.bodies["recording"])]))
    return specs


# ---------------------------------------------------------------------- webhooks and their log
class WebhookCalls:
    """A webhook's detail call, whose version follows the run's `WebhookListing`."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.listing: WebhookListing | None = None

    def detail(self, work: Work) -> dict:
        return _object(self.client, f"{WEBHOOKS}{work.record_id}/")

    def version(self, hook: dict) -> str:
        return self.listing.detail_version(hook) if self.listing is not None else row_hash(hook)


def webhook_entity(calls: WebhookCalls) -> Entity:
    return Entity(
        name="webhooks", table=None, marked_table="webhooks", key=key_of, version=row_hash, group=group_of,
        wants=lambda hook: (["detail"], False),
        parts=(Part("detail", ("webhooks",), fetch=calls.detail, not_found=NotFound.DELETED, version=calls.version,
                    digest=lambda body: row_hash(h.without_secrets(body))),),
    )


def webhook_specs(report: RunReport, hints: dict[str, dict]) -> list[TableSpec]:
    def row(f: Fetched) -> list[dict]:
        detail = f.bodies["detail"]
        listed = f.work.item if f.work.item is not None else h.without_secrets(detail)
        problems = Problems()
        out = h.conform({**listed, "failure_count": detail.get("failure_count"),
                         "last_failure_reason": detail.get("last_failure_reason")}, "webhooks", problems)
        report_problems(report, "webhooks", f.work.record_id, problems)
        return [out]

    return [TableSpec("webhooks", part="detail", shape=row, hints=hints["webhooks"])]


def instant_of(value: Any) -> str | None:
    """An instant as the ledger files it (ISO, UTC); None when it cannot be read."""
    instant = read_instant(value)
    return iso(instant) if instant else None


def event_entity() -> Entity:
    return Entity(name="webhook_events", table="webhook_events", key=key_of, version=row_hash,
                  day=lambda event: instant_of(event.get("created_at")),
                  group=lambda event: read_text(event.get("webhook_id")),
                  wants=lambda event: ((), not h.event_final(event)))  # waiting: it may still change


# ---------------------------------------------------------------------- lists of an organization
def conformed(report: RunReport, table: str) -> Any:
    """A list row read as its columns' types, its problems named."""
    def row(item: dict) -> dict:
        problems = Problems()
        out = h.conform(item, table, problems)
        report_problems(report, table, key_of(item), problems)
        return out

    return row


def usage_entity(key: Any) -> Entity:
    return Entity(name="usage", table="usage", key=key, version=row_hash, group=group_of)
