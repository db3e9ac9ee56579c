"""Simulator of the Meemo external API (observed-responses.md, section 3).

Checked against the vendor's Python SDK (`meemo` 0.0.10): tests/test_meemo_sdk_contract.py
drives the SDK's own client against this simulator and parses every answer with its models.

OAuth 2 client credentials with short, configurable token lifetimes (and expiry on demand),
several organizations per application, page-number paging with absolute `next` URLs,
whole-day date filters counted in the vendor's time zone (UTC+7), stage statuses that finish
after the meeting, confidential segments left out of transcripts, Markdown or legacy JSON
summaries, signed recording and video URLs that change on every call, webhook signing secrets.

Builds side by side in one account, as instances really differ: meetings served by an older
api-service build carry no `recording`/`transcription`/`summarization` objects (list and
detail) nor `organization_id`, and answer an empty transcript until it is done; some details
have no `host_name`; old-build recordings have only `recording_url` (a path), `duration` and
`format`; webhooks of the older build list their delivery log without `next`/`previous`.
Errors come in the three body shapes the API uses: DRF `detail` (a string, a list, or a 400
map of field -> messages), the newer `{"error": {code, message, request_id, recovery}}`
(summary-with-video, upcoming meetings, throttling), and OAuth's on the token endpoint.

Lifecycles move only when a test says so (`complete`, `end`, `add_meeting`...), never with
the clock, so that two runs against the same simulator see the same data.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from .base import HttpError, Request, Response, Simulator, route
from .sample_text import sample_sentence

API = "/api/v1/external"
TOKEN_PATH = "/api/auth/token/"
VENDOR_TZ = timezone(timedelta(hours=7))  # date filters are whole days in Jakarta time
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 10, 100
UPCOMING_LIMIT_DEFAULT, UPCOMING_LIMIT_MAX = 10, 100
LEGACY_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
# capability -> (quota or None, unit per meeting minute): speech-to-text in seconds, the rest LLM tokens
CAPABILITIES: dict[str, tuple[float | None, float]] = {
    "speech-to-text": (360000.0, 60.0), "summarization:input": (5_000_000.0, 210.0),
    "summarization:output": (1_000_000.0, 35.0), "keyword-detection:input": (None, 190.0),
    "keyword-detection:output": (None, 4.0), "ai-chat:input": (2_000_000.0, 0.0),
    "ai-chat:output": (500_000.0, 0.0)}
WEBHOOK_EVENT_TYPES = ["meeting.created", "meeting.deleted", "meeting.transcription_completed",
                       "meeting.transcription_failed", "meeting.summarization_completed"]
FINAL_EVENT_STATUSES = ("SUCCESS", "FAILED")
RETRYING = "RETRYING"  # a delivery still being retried (not final)
NAMES = ["Budi Santoso", "Siti Rahmawati", "Erik Lindström", "李小龙", "Ольга Петрова",
         "María José", "אורי כהן", "Zoë Adams", "Dewi Lestari", "Agus Pratama"]


@dataclass
class App:
    client_secret: str
    org_ids: set[int]


@dataclass
class Meeting:
    """One meeting as the vendor stores it; `list_item()`/`detail()` are what the API shows."""

    id: int
    org_id: int
    title: str
    created_at: datetime
    start_time: datetime
    end_time: datetime | None
    status: str
    stages: dict[str, dict | None]  # tracked for every meeting; shown only by current builds
    host: dict
    summary_complete: bool = False
    calendar_event: dict | None = None
    location: str = ""
    language: str = "id"
    keywords: list[str] = field(default_factory=list)
    num_cluster: int = 0
    segments: list[dict] = field(default_factory=list)  # every segment, confidential ones too
    summary: str | dict | None = None
    notes: str = ""
    summary_keywords: list[str] = field(default_factory=list)
    participants: list[dict] = field(default_factory=list)
    has_recording: bool = True
    extra: dict = field(default_factory=dict)  # fields the docs do not list
    deleted: bool = False
    style: int = 0
    old_build: bool = False  # served by an older api-service build: no stage objects, no organization_id
    host_name_in_detail: bool = True
    # malformed values served as they are (bad records): in list and detail, detail only, summary
    raw: dict = field(default_factory=dict)
    raw_detail: dict = field(default_factory=dict)
    raw_summary: dict = field(default_factory=dict)


def _iso(value: datetime | None, style: int = 0) -> str | None:
    """Timestamps in the shapes the API sends: Z with ms, a +07:00 offset, no fraction."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    if style == 1:
        return value.astimezone(VENDOR_TZ).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+07:00"
    if style == 2:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _stage(status: str | None, description: str = "") -> dict | None:
    return None if status is None else {"status": status, "description": description}


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


class MeemoSimulator(Simulator):
    """Meemo: applications reading several organizations, meetings whose transcripts and
    summaries finish later, webhooks and their delivery log, usage against quotas, and the
    upcoming events of connected calendars."""

    name = "meemo"

    def __init__(self, *, organizations: int = 2, meetings: int = 24, upcoming: int = 2,
                 legacy: int = 2, span_days: float = 20, processing_share: float = 0.25,
                 segments: tuple[int, int] = (4, 16), confidential_share: float = 0.1,
                 webhooks: int = 2, events: tuple[int, int] = (2, 8), old_build_every: int = 4,
                 calendar_organizations: int = 1, token_ttl_seconds: float = 3600, seed: int = 0,
                 **kw: Any) -> None:
        super().__init__(seed=seed, **kw)
        self.token_ttl_seconds = token_ttl_seconds
        self.segment_range = segments
        self.confidential_share = confidential_share
        self.processing_share = processing_share
        self.old_build_every = old_build_every
        self.client_id = f"meemo-app-{seed}"
        self.client_secret = f"mcs_{self.rng.getrandbits(128):032x}"
        self.apps: dict[str, App] = {}
        self.tokens: dict[str, tuple[str, datetime]] = {}  # token -> (client_id, expires_at)
        self.tokens_issued: list[str] = []
        self._expire_countdown: int | None = None
        self._next_id = 1000
        self.orgs: dict[int, dict] = {}
        self.users: dict[int, list[dict]] = {}
        self.topics: dict[int, list[dict]] = {}
        self.meetings: dict[int, Meeting] = {}
        self.webhooks: dict[int, dict] = {}
        self.events: list[dict] = []
        self.calendars: set[int] = set()  # organizations with a calendar connected
        self.calendar_events: dict[int, dict] = {}  # CalendarEvent record id -> event
        # throttling: API answers left to refuse with a 429 whose wait is only in the body
        self._throttle_left = 0
        self._throttle_seconds = 0
        self.throttled_at: list[float] = []  # monotonic times of the 429s served
        self.resumed_at: float | None = None  # of the first answer after the last 429
        now = self.now()
        for n in range(organizations):
            org = self.add_organization(f"PT Nusantara {n + 1}" if n % 2 == 0 else f"Kyiv Labs {n + 1}")
            if n < calendar_organizations:
                self.calendars.add(org)
            for i in range(meetings):
                start = now - timedelta(seconds=span_days * 86400 * (i + 0.5) / max(1, meetings))
                self.add_meeting(org, start=start, created_at=None, state=self._random_state())
            for i in range(upcoming):
                start = now + timedelta(days=1 + i, hours=3)
                self.add_meeting(org, start=start, created_at=now - timedelta(days=2 + i), state="upcoming")
            for i in range(legacy):
                start = datetime(2023, 6 + i, 10 + n, 9, 30, tzinfo=UTC)
                self.add_meeting(org, start=start, created_at=start - timedelta(days=1), state="completed")
            for _ in range(webhooks):
                hook = self.add_webhook(org)
                for _ in range(self.rng.randint(*events)):
                    self.add_event(hook, created_at=now - timedelta(hours=self.rng.uniform(1, 24 * span_days)))
            if org in self.calendars:
                for i in range(3):
                    self.add_calendar_event(org, start=now + timedelta(days=3 + i, hours=2), title=f"Planning {i + 1}")
        self.add_app(self.client_id, self.client_secret, set(self.orgs))

    # ------------------------------------------------------------------ data
    def _id(self) -> int:
        self._next_id += self.rng.randint(1, 7)
        return self._next_id

    def _random_state(self) -> str:
        roll = self.rng.random()
        if roll < self.processing_share:
            return "processing"
        return "failed" if roll < self.processing_share + 0.05 else "manual" if roll < self.processing_share + 0.12 else "completed"

    def add_app(self, client_id: str, client_secret: str, org_ids: set[int]) -> None:
        self.apps[client_id] = App(client_secret, set(org_ids))

    def add_organization(self, name: str) -> int:
        org_id = len(self.orgs) + 1
        self.orgs[org_id] = {"id": org_id, "name": name}
        self.users[org_id] = [{"id": org_id * 100 + i, "name": name_, "email": f"user{i}@org{org_id}.example"}
                              for i, name_ in enumerate(self.rng.sample(NAMES, 5))]
        self.topics[org_id] = [{"id": org_id * 10 + i, "name": topic, "alias": alias, "language": lang}
                               for i, (topic, alias, lang) in enumerate(
                                   [("Rapat Umum", "general-id", "id"), ("Sales call", "sales-en", "en"),
                                    ("Стендап", "standup-ru", "ru")])]
        return org_id

    def add_meeting(self, org_id: int, *, start: datetime | None = None, created_at: datetime | None = None,
                    state: str = "completed", title: str | None = None, old_build: bool | None = None) -> Meeting:
        """A new meeting; `state` is upcoming, ongoing, processing, completed, failed or manual.
        `old_build` (default: every `old_build_every`-th meeting) serves it as an older build does."""
        rng = self.rng
        with self.lock:
            now = self.now()
            start = start or now - timedelta(hours=1)
            duration = rng.randint(600, 3600)
            host = rng.choice(self.users[org_id])
            from_calendar = rng.random() < 0.6
            imported = not from_calendar and rng.random() < 0.5
            if created_at is None:
                created_at = start + timedelta(hours=2) if imported else start - timedelta(hours=rng.uniform(1, 20))
                created_at = min(created_at, now)
            mid = self._id()
            n = len(self.meetings)
            if old_build is None:
                old_build = bool(self.old_build_every) and n % self.old_build_every == 1
            meeting = Meeting(
                id=mid, org_id=org_id, title=title or f"Meeting #{n} – {rng.choice(['Roadmap', 'Sync', 'Демо', '客户', 'Rapat'])}",
                created_at=created_at, start_time=start, end_time=None, status="upcoming",
                stages={"recording": None, "transcription": None, "summarization": None},
                host=dict(host), location=rng.choice(["Zoom", "Google Meet", "Jakarta HQ", ""]),
                language=rng.choice(["id", "en", "en-US"]), keywords=rng.sample(["budget", "hiring", "Q3", "launch"], 2),
                has_recording=state != "manual", style=n % 3, old_build=old_build,
                host_name_in_detail=n % 3 != 2)
            if from_calendar:
                meeting.calendar_event = {
                    "event_id": f"evt_{mid}", "summary": meeting.title, "organizer_email": host["email"],
                    "attendees": [{"email": u["email"], "display_name": u["name"], "response_status": "accepted"}
                                  for u in rng.sample(self.users[org_id], 2)],
                    "meeting_link": f"https://meet.example/{mid}", "description": "<p>Agenda</p>",
                    "start_time": _iso(start), "end_time": _iso(start + timedelta(seconds=duration))}
            if n % 5 == 0:
                meeting.extra["source_platform"] = rng.choice(["zoom", "gmeet", "upload"])
            people = rng.sample(self.users[org_id], rng.randint(1, 3))
            meeting.participants = [{"id": u["id"], "name": u["name"], "email": u["email"],
                                     "position": rng.choice(["Engineer", "Manager", ""]),
                                     "department": rng.choice(["R&D", "Sales", ""])} for u in people]
            meeting.participants.append({"id": None, "name": "Guest " + rng.choice(NAMES), "position": "",
                                         "department": ""})
            t, speakers = 0.0, [p["name"] for p in meeting.participants]
            for i in range(rng.randint(*self.segment_range)):
                length = round(rng.uniform(1.0, 8.0), 2)
                meeting.segments.append({"speaker": speakers[i % len(speakers)], "text": sample_sentence(rng),
                                         "start_time": round(t, 2), "end_time": round(t + length, 2),
                                         "confidential": rng.random() < self.confidential_share})
                t += length + round(rng.uniform(0.1, 1.0), 2)
            if start < LEGACY_BEFORE:
                meeting.summary = {"overview": f"{meeting.title}: {sample_sentence(rng)}",
                                   "sections": [{"title": "Action items", "items": [sample_sentence(rng), sample_sentence(rng)]},
                                                {"title": "Decisions", "content": sample_sentence(rng)}]}
            else:
                cited = [self.segment_id(meeting, i) for i in range(min(2, len(meeting.segments)))]
                cite = [f" (segment:{c})" for c in cited] + ["", ""]
                meeting.summary = (f"## Ringkasan\n\n- {sample_sentence(rng)}{cite[0]}\n- {sample_sentence(rng)}{cite[1]}\n\n"
                                   f"**Next steps:** {sample_sentence(rng)}")
            meeting.notes = sample_sentence(rng) if rng.random() < 0.7 else ""
            meeting.summary_keywords = rng.sample(["pricing", "timeline", "ценообразование", "导入", "anggaran"], 2)
            meeting.num_cluster = len(speakers)
            self.meetings[mid] = meeting
            self._set_state(meeting, state, duration)
            return meeting

    @staticmethod
    def segment_id(m: Meeting, index: int) -> int:
        """The vendor's id of a transcript segment (what `(segment:<id>)` citations name)."""
        return m.id * 1000 + index

    def _set_state(self, m: Meeting, state: str, duration: int | None = None) -> None:
        duration = duration or 1800
        if state == "upcoming":
            return
        if state == "ongoing":
            m.status, m.stages["recording"] = "recording", _stage("in_progress", "Recording")
            m.stages["transcription"], m.stages["summarization"] = _stage("pending"), _stage("pending")
            return
        m.status = "past"
        m.end_time = m.end_time or m.start_time + timedelta(seconds=duration)
        if state == "manual":  # created by hand, no bot: nothing to process
            return
        m.stages["recording"] = _stage("completed", "Recording saved")
        if state == "processing":
            m.stages["transcription"] = _stage("in_progress", "Transcribing")
            m.stages["summarization"] = _stage("pending", "Waiting for transcript")
        elif state == "transcribed":  # the transcript is done, the summary not yet
            m.stages["transcription"] = _stage("completed", "Done")
            m.stages["summarization"] = _stage("in_progress", "Summarizing")
        elif state == "failed":
            m.stages["transcription"] = _stage("completed", "Done")
            m.stages["summarization"] = _stage("failed", "Summary could not be generated")
        else:
            m.stages["transcription"] = _stage("completed", "Done")
            m.stages["summarization"] = _stage("completed", "Done")
            m.summary_complete = True

    def end(self, meeting_id: int) -> None:
        """The meeting ends now; transcription starts."""
        with self.lock:
            m = self.meetings[meeting_id]
            m.end_time = self.now()
            self._set_state(m, "processing")

    def transcribe(self, meeting_id: int) -> None:
        """The vendor finishes the transcript now; the summary is still being written."""
        with self.lock:
            self._set_state(self.meetings[meeting_id], "transcribed")

    def complete(self, meeting_id: int) -> None:
        """The vendor finishes transcribing and summarizing a meeting now."""
        with self.lock:
            m = self.meetings[meeting_id]
            m.has_recording = True
            self._set_state(m, "completed")

    def delete(self, meeting_id: int) -> None:
        with self.lock:
            self.meetings[meeting_id].deleted = True

    def rename(self, meeting_id: int, title: str) -> None:
        with self.lock:
            self.meetings[meeting_id].title = title

    def add_webhook(self, org_id: int) -> int:
        hid = self._id()
        failures = self.rng.randint(0, 3)
        self.webhooks[hid] = {
            "id": hid, "target_url": f"https://hooks.example/{org_id}/{hid}",
            "events": self.rng.sample(WEBHOOK_EVENT_TYPES, 2),
            "is_active": self.rng.random() < 0.8, "description": self.rng.choice([f"Sync to CRM ({org_id})", ""]),
            "created_at": _iso(self.now() - timedelta(days=60)), "organization_id": org_id,
            "failure_count": failures, "last_failure_reason": "HTTP 500 from target" if failures else "",
            "secret_key": f"whsec_{self.rng.getrandbits(128):032x}",
            "old_build": len(self.webhooks) % 2 == 1}  # its delivery log pages carry no next/previous
        return hid

    def add_event(self, webhook_id: int, *, created_at: datetime | None = None,
                  status: str | None = None) -> dict:
        """A delivery log entry: `SUCCESS` or `FAILED` (final), or `RETRYING` (not yet)."""
        rng = self.rng
        status = status or rng.choice(["SUCCESS", "SUCCESS", "SUCCESS", "FAILED"])
        event = {"id": self._id(), "webhook_id": webhook_id, "event_uuid": f"evt_{rng.getrandbits(64):016x}",
                 "event_type": rng.choice(self.webhooks[webhook_id]["events"]), "status": status,
                 "response_status": {"SUCCESS": 200, "FAILED": 500}.get(status, 503),
                 "attempt_count": 1 if status == "SUCCESS" else 3,
                 "created_at": _iso(created_at or self.now())}
        with self.lock:
            self.events.append(event)
            if status == "FAILED":
                hook = self.webhooks[webhook_id]
                hook.update(failure_count=hook["failure_count"] + 1, last_failure_reason="HTTP 500 from target")
        return event

    def deliver(self, event_id: int) -> None:
        """An event being retried is delivered now (the row changes, its created_at does not)."""
        with self.lock:
            event = next(e for e in self.events if e["id"] == event_id)
            event.update(status="SUCCESS", response_status=200, attempt_count=event["attempt_count"] + 1)

    def add_calendar_event(self, org_id: int, *, start: datetime, title: str = "Weekly sync",
                           minutes: int = 45) -> dict:
        """An event of the organization's connected calendar."""
        with self.lock:
            eid = self._id()
            event = {"id": eid, "organization_id": org_id, "organization_name": self.orgs[org_id]["name"],
                     "event_id": f"gcal_{eid:08x}", "summary": title,
                     "description": "<p>Agenda: <b>status</b></p>" if eid % 2 else None,
                     "start_time": _iso(start), "end_time": _iso(start + timedelta(minutes=minutes)),
                     "meeting_link": f"https://meet.example/{eid}" if eid % 3 else None,
                     "organizer_email": self.users[org_id][0]["email"], "status": "confirmed"}
            self.calendar_events[eid] = event
            return event

    def cancel_calendar_event(self, event_id: int) -> None:
        """The organizer deletes the event: it leaves the upcoming list before it starts."""
        with self.lock:
            del self.calendar_events[event_id]

    def upcoming(self, org_ids: set[int], limit: int = UPCOMING_LIMIT_DEFAULT) -> list[dict]:
        """Upcoming events of the connected calendars, soonest first."""
        now = self.now()
        with self.lock:
            found = [dict(e) for e in self.calendar_events.values()
                     if e["organization_id"] in org_ids and e["organization_id"] in self.calendars
                     and datetime.fromisoformat(e["start_time"].replace("Z", "+00:00")) > now]
        return sorted(found, key=lambda e: (e["start_time"], e["id"]))[:limit]

    def throttle(self, answers: int, retry_after_seconds: int = 1) -> None:
        """The next `answers` API calls are refused with a 429 whose wait is given only in
        the body's `error.recovery.retry_after_seconds` (no `Retry-After` header)."""
        with self.lock:
            self._throttle_left, self._throttle_seconds = answers, retry_after_seconds
            self.resumed_at = None

    def add_bad_records(self) -> dict[str, str]:
        """One malformed record of each kind (`base.BAD_RECORD_KINDS`), on meetings of the first
        organization; returns {kind: id as the source names it}: a meeting's id, or
        `<meeting id>#<segment index>` for segments. Their summaries carry malformed values too
        (`keywords` as JSON text, `notes` as a list)."""
        org = min(self.orgs)
        start = self.now() - timedelta(days=2)

        def meeting(hours: int, **raw: Any) -> Meeting:
            m = self.add_meeting(org, start=start + timedelta(hours=hours), state="completed", old_build=False)
            m.raw.update(raw)
            return m

        number = meeting(1)
        number.raw_detail["duration_seconds"] = "3600.5"
        number.raw_summary["keywords"] = json.dumps(number.summary_keywords)
        bad_time = meeting(2, start_time="2026-13-45T25:61:00Z")
        empty_time = meeting(3, created_at="")
        as_text = meeting(4)
        as_text.raw["calendar_event"] = json.dumps(as_text.calendar_event or {
            "event_id": f"evt_{as_text.id}", "summary": as_text.title, "attendees": []})
        changed = meeting(5)
        changed.raw_detail["participant_count"] = {"internal": 3, "guests": 1}
        changed.raw_summary["notes"] = ["Follow up with finance", "Send the deck"]
        null_text, no_start = meeting(6), meeting(7)
        for m in (null_text, no_start):
            while len(m.segments) < 4:
                m.segments.append({"speaker": "Unknown", "text": "…", "start_time": 99.0 + len(m.segments),
                                   "end_time": 99.5 + len(m.segments), "confidential": False})
            for s in m.segments[:3]:
                s["confidential"] = False
        null_text.segments[1]["text"] = None
        del no_start.segments[2]["start_time"]
        return {"number_as_string": str(number.id), "bad_timestamp": str(bad_time.id),
                "empty_timestamp": str(empty_time.id), "object_as_json_string": str(as_text.id),
                "type_change": str(changed.id), "segment_null_text": f"{null_text.id}#1",
                "segment_no_start": f"{no_start.id}#2"}

    # ------------------------------------------------------------------ views (also used by tests)
    def visible(self, org_ids: set[int] | None = None) -> list[Meeting]:
        """Meetings the list shows, newest start first."""
        rows = [m for m in self.meetings.values() if not m.deleted and (org_ids is None or m.org_id in org_ids)]
        return sorted(rows, key=lambda m: (m.start_time, m.id), reverse=True)

    def list_item(self, m: Meeting) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": m.id, "title": m.title, "start_time": _iso(m.start_time, m.style),
            "end_time": _iso(m.end_time, m.style), "created_at": _iso(m.created_at, m.style),
            "status": m.status}
        if not m.old_build:
            item.update({k: dict(v) if v else None for k, v in m.stages.items()})
        item.update({"summary_complete": m.summary_complete, "host_name": m.host["name"]})
        if not m.old_build:
            item["organization_id"] = m.org_id
        item.update({"calendar_event": m.calendar_event, **m.extra, **m.raw})
        return item

    def detail(self, m: Meeting) -> dict[str, Any]:
        running = m.end_time is None
        item = self.list_item(m)
        if not m.host_name_in_detail:
            item.pop("host_name")
        return {**item, "location": m.location, "host": m.host, "language": m.language,
                "keywords": m.keywords, "participant_count": len(m.participants),
                "duration_seconds": None if running else (m.end_time - m.start_time).total_seconds(),
                "num_cluster": 0 if running else m.num_cluster, **m.raw, **m.raw_detail}

    def transcript_ready(self, m: Meeting) -> bool:
        return (m.stages["transcription"] or {}).get("status") == "completed"

    def summary_ready(self, m: Meeting) -> bool:
        return (m.stages["summarization"] or {}).get("status") == "completed"

    def served_segments(self, m: Meeting) -> list[dict]:
        """The transcript as served: confidential segments left out."""
        if not self.transcript_ready(m):
            return []
        return [{k: v for k, v in s.items() if k != "confidential"} for s in m.segments if not s["confidential"]]

    def summary_body(self, m: Meeting) -> dict[str, Any]:
        ready = self.summary_ready(m)
        body = {"meeting_id": m.id, "title": m.title, "summary": m.summary if ready else None,
                "notes": m.notes if ready else "", "keywords": m.summary_keywords if ready else []}
        return {**body, **(m.raw_summary if ready else {})}

    def summary_with_video(self, m: Meeting) -> dict[str, Any]:
        """The summary re-cut for GLChat: placeholders, inline embeds and signed video URLs."""
        ready = self.summary_ready(m)
        markdown = m.summary if ready and isinstance(m.summary, str) else None
        video = m.has_recording and (m.stages["recording"] or {}).get("status") == "completed"
        video_id = f"video_meeting_{m.id}"
        url = f"https://cdn.example/{m.id}.mp4?sig={secrets.token_hex(12)}" if video else None
        citations = None
        placeholder = inline = ""
        if markdown is not None:
            by_id = {self.segment_id(m, i): s for i, s in enumerate(m.segments)}
            citations, placeholder, inline = [], markdown, markdown
            for sid, s in by_id.items():
                ref = f"(segment:{sid})"
                if ref not in markdown:
                    continue
                label = f"{video_id}@{_clock(s['start_time'])}-{_clock(s['end_time'])}"
                embed = f"![{label}]({url}#t={s['start_time']})" if url else ""
                citations.append({"segment_ids": [sid], "start_seconds": s["start_time"],
                                  "end_seconds": s["end_time"], "placeholder": f"[{label}]" if url else "",
                                  "inline_embed": embed})
                placeholder = placeholder.replace(ref, f"[{label}]" if url else f"({label})")
                inline = inline.replace(ref, embed or f"({label})")
            if url:
                placeholder = f"[{video_id}]\n\n{placeholder}"
                inline = f"![{m.title}]({url})\n\n{inline}"
        return {"meeting_id": m.id, "title": m.title, "record_id": m.id * 10 + 1 if m.has_recording else None,
                "summary_markdown": markdown, "placeholder_message_markdown": placeholder,
                "inline_message_markdown": inline, "video_id": video_id,
                "media_mapping": {f"[{video_id}]": f"![{m.title}]({url})"} if url else {},
                "citations": citations, "video_url": url}

    # ------------------------------------------------------------------ protocol
    def source_config(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "client_id": self.client_id, "client_secret": self.client_secret}

    def expire_tokens(self, after_requests: int = 0) -> None:
        """Every token issued so far expires now, or after `after_requests` more API calls."""
        with self.lock:
            if after_requests:
                self._expire_countdown = after_requests
                return
            past = self.now() - timedelta(seconds=1)
            self.tokens = {t: (app, past) for t, (app, _) in self.tokens.items()}

    def error_body(self, error: HttpError) -> Any:
        """The three shapes: DRF (`detail` string or list, or a field map), the newer
        `{"error": {...}}`, and OAuth's `{"error": "<code>", ...}` (token endpoint)."""
        if error.code in ("fields", "oauth"):
            return error.extra
        if error.code == "detail_list":
            return {"detail": error.extra["detail"]}
        if error.code and error.code.startswith("error:"):
            body: dict[str, Any] = {"code": error.code[6:], "message": error.message,
                                    "request_id": f"req_{secrets.token_hex(6)}"}
            return {"error": {**body, **error.extra}}
        return {"detail": error.message}

    def dispatch(self, request: Request) -> Response:
        if not request.path.endswith("/"):  # Django's APPEND_SLASH
            query = f"?{urlencode(request.query)}" if request.query else ""
            return Response(301, None, {"Location": f"{self.base_url}{request.path}/{query}"})
        return super().dispatch(request)

    def authenticate(self, request: Request) -> Any:
        if request.path == TOKEN_PATH:
            return None
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        with self.lock:
            if self._expire_countdown is not None:
                self._expire_countdown -= 1
                if self._expire_countdown <= 0:
                    self._expire_countdown = None
                    self.expire_tokens()
            found = self.tokens.get(token)
        if found is None:
            raise HttpError(401, "Authentication credentials were not provided." if not token
                            else "Given token not valid for any token type")
        client_id, expires_at = found
        if self.now() >= expires_at:
            raise HttpError(401, "Token is expired")
        return self.apps[client_id]

    def before_handle(self, request: Request) -> dict[str, str]:
        if request.path == TOKEN_PATH:
            return {}
        with self.lock:
            if self._throttle_left > 0:
                self._throttle_left -= 1
                self.throttled_at.append(time.monotonic())
                raise HttpError(429, "Request was throttled.", "error:throttled", extra={
                    "recovery": {"retryable": True, "retry_after_seconds": self._throttle_seconds}})
            if self.throttled_at and self.resumed_at is None:
                self.resumed_at = time.monotonic()
        return {}

    def _org(self, request: Request, value: str | None, name: str = "organization_id") -> int | None:
        if value in (None, ""):
            return None
        try:
            org_id = int(value)
        except ValueError:
            raise HttpError(400, "", "fields", extra={name: ["A valid integer is required."]}) from None
        if org_id not in request.principal.org_ids:
            raise HttpError(403, "You do not have permission to access this organization.")
        return org_id

    def _page(self, request: Request, rows: list, serialize: Any, *, links: bool = True) -> dict[str, Any]:
        q = request.query
        try:
            page = int(q.get("page") or 1)
            size = max(1, min(PAGE_SIZE_MAX, int(q.get("size") or PAGE_SIZE_DEFAULT)))
        except ValueError:
            raise HttpError(404, "Invalid page.") from None
        pages = max(1, math.ceil(len(rows) / size))
        if page < 1 or page > pages:
            raise HttpError(404, "Invalid page.")

        def link(n: int) -> str | None:
            if n < 1 or n > pages:
                return None
            return f"{self.base_url}{request.path}?{urlencode({**q, 'page': n})}"

        results = [serialize(r) for r in rows[(page - 1) * size: page * size]]
        if not links:  # as the vendor's example and SDK model show it
            return {"count": len(rows), "results": results}
        return {"count": len(rows), "next": link(page + 1), "previous": link(page - 1), "results": results}

    def _meeting(self, request: Request, modern: bool = False) -> Meeting:
        m = self.meetings.get(int(request.params["id"]))
        if m is None or m.deleted:
            raise HttpError(404, "Meeting not found." if modern else "Not found.",
                            "error:meeting_not_found" if modern else None)
        if m.org_id not in request.principal.org_ids:
            raise HttpError(403, "You do not have permission to access this meeting.",
                            "error:permission_denied" if modern else None)
        return m

    @staticmethod
    def _day(request: Request, name: str) -> date | None:
        value = request.query.get(name)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise HttpError(400, "", "fields", extra={name: ["Enter a valid date."]}) from None

    # ------------------------------------------------------------------ routes
    @route("POST", TOKEN_PATH)
    def token(self, request: Request) -> Any:
        form = request.body or {}
        if form.get("grant_type") != "client_credentials":
            raise HttpError(400, "", "oauth", extra={"error": "unsupported_grant_type"})
        app = self.apps.get(form.get("client_id", ""))
        if app is None or not secrets.compare_digest(app.client_secret, form.get("client_secret", "")):
            raise HttpError(401, "", "oauth", extra={"error": "invalid_client",
                                                     "error_description": "Client authentication failed."})
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = (form["client_id"], self.now() + timedelta(seconds=self.token_ttl_seconds))
            self.tokens_issued.append(token)
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl_seconds),
                "scope": "read write"}

    @route("GET", API + "/webhooks/available-organizations/")
    def available_organizations(self, request: Request) -> Any:
        return [self.orgs[o] for o in sorted(request.principal.org_ids)]

    @route("GET", API + "/meeting/")
    def list_meetings(self, request: Request) -> Any:
        q = request.query
        org_id = self._org(request, q.get("organization_id"))
        bounds = {name: self._day(request, name) for name in
                  ("created_after", "created_before", "start_after", "start_before")}

        def day(value: datetime) -> date:
            return value.astimezone(VENDOR_TZ).date()

        def keep(m: Meeting) -> bool:
            checks = [
                bounds["created_after"] is None or day(m.created_at) >= bounds["created_after"],
                bounds["created_before"] is None or day(m.created_at) <= bounds["created_before"],
                bounds["start_after"] is None or day(m.start_time) >= bounds["start_after"],
                bounds["start_before"] is None or day(m.start_time) <= bounds["start_before"],
                not q.get("title") or q["title"].lower() in m.title.lower(),
                not q.get("status") or m.status == q["status"],
                not q.get("summary_complete") or str(m.summary_complete).lower() == q["summary_complete"].lower(),
                not q.get("from_calendar") or str(m.calendar_event is not None).lower() == q["from_calendar"].lower(),
                not q.get("calendar_event_id") or (m.calendar_event or {}).get("event_id") == q["calendar_event_id"],
                not q.get("participants") or bool(
                    set(q["participants"].split(",")) & {str(p.get("id")) for p in m.participants}),
            ]
            return all(checks)

        with self.lock:
            rows = [m for m in self.visible({org_id} if org_id else request.principal.org_ids) if keep(m)]
            return self._page(request, rows, self.list_item)

    @route("GET", API + r"/meeting/(?P<id>\d+)/")
    def get_meeting(self, request: Request) -> Any:
        with self.lock:
            return self.detail(self._meeting(request))

    @route("GET", API + r"/meeting/(?P<id>\d+)/transcript/")
    def get_transcript(self, request: Request) -> Any:
        with self.lock:
            m = self._meeting(request)
            ready = self.transcript_ready(m)
            return {"meeting_id": m.id, "title": m.title, "total_segments": len(m.segments) if ready else 0,
                    "transcripts": self.served_segments(m)}

    @route("GET", API + r"/meeting/(?P<id>\d+)/summary/")
    def get_summary(self, request: Request) -> Any:
        with self.lock:
            return self.summary_body(self._meeting(request))

    @route("GET", API + r"/meeting/(?P<id>\d+)/summary-with-video/")
    def get_summary_with_video(self, request: Request) -> Any:
        with self.lock:
            return self.summary_with_video(self._meeting(request, modern=True))

    @route("GET", API + r"/meeting/(?P<id>\d+)/participants/")
    def get_participants(self, request: Request) -> Any:
        with self.lock:
            m = self._meeting(request)
            return {"meeting_id": m.id, "title": m.title, "total_participants": len(m.participants),
                    "participants": m.participants}

    @route("GET", API + r"/meeting/(?P<id>\d+)/recording/")
    def get_recording(self, request: Request) -> Any:
        with self.lock:
            m = self._meeting(request)
            if not m.has_recording or (m.stages["recording"] or {}).get("status") != "completed":
                raise HttpError(404, "Recording not found.")
            duration = (m.end_time - m.start_time).total_seconds() if m.end_time else 0.0
            if m.old_build:  # the fields before `assets`: a media path, its duration and format
                return {"meeting_id": m.id, "title": m.title, "duration": duration,
                        "recording_url": f"/media/meeting_records/{m.id}/recording.mp3", "format": "mp3"}
            sig = secrets.token_hex(12)  # signed anew on every call
            return {"meeting_id": m.id, "title": m.title, "duration": duration,
                    "assets": [{"media_kind": "audio", "url": f"https://cdn.example/{m.id}.mp3?sig={sig}",
                                "mime_type": "audio/mpeg", "format": "mp3"},
                               {"media_kind": "video", "url": f"https://cdn.example/{m.id}.mp4?sig={sig}",
                                "mime_type": "video/mp4", "format": "mp4"}],
                    "recording_url": f"https://cdn.example/{m.id}.mp3?sig={sig}", "format": "mp3",
                    "video_url": f"https://cdn.example/{m.id}.mp4?sig={sig}", "video_format": "mp4"}

    @route("GET", API + "/topics/")
    def get_topics(self, request: Request) -> Any:
        org_id = self._org(request, request.query.get("organization_id"))
        orgs = [org_id] if org_id else sorted(request.principal.org_ids)
        return [t for o in orgs for t in self.topics[o]]

    @staticmethod
    def _webhook(hook: dict, *, detail: bool) -> dict:
        """A webhook as served: `failure_count`/`last_failure_reason` only in its detail."""
        hidden = {"old_build"} | (set() if detail else {"failure_count", "last_failure_reason"})
        return {k: v for k, v in hook.items() if k not in hidden}

    @route("GET", API + "/webhooks/")
    def list_webhooks(self, request: Request) -> Any:
        org_id = self._org(request, request.query.get("organization_id"))
        orgs = {org_id} if org_id else request.principal.org_ids
        with self.lock:
            rows = sorted((h for h in self.webhooks.values() if h["organization_id"] in orgs),
                          key=lambda h: h["id"], reverse=True)
            return self._page(request, rows, lambda h: self._webhook(h, detail=False))

    @route("GET", API + r"/webhooks/(?P<id>\d+)/")
    def get_webhook(self, request: Request) -> Any:
        with self.lock:
            hook = self.webhooks.get(int(request.params["id"]))
            if hook is None or hook["organization_id"] not in request.principal.org_ids:
                raise HttpError(404, "Not found.")
            return self._webhook(hook, detail=True)

    def _allowed_hooks(self, request: Request) -> set[int]:
        return {h for h, w in self.webhooks.items() if w["organization_id"] in request.principal.org_ids}

    @route("GET", API + "/webhook-events/")
    def list_events(self, request: Request) -> Any:
        allowed = self._allowed_hooks(request)
        wanted = request.query.get("webhook_id")
        links = True
        if wanted:
            try:
                hook = int(wanted)
            except ValueError:
                raise HttpError(400, "", "detail_list", extra={"detail": ["webhook_id must be an integer."]}) from None
            if hook not in allowed:
                raise HttpError(404, "Not found.")
            allowed, links = {hook}, not self.webhooks[hook]["old_build"]
        with self.lock:
            rows = sorted((e for e in self.events if e["webhook_id"] in allowed),
                          key=lambda e: (e["created_at"], e["id"]), reverse=True)
            return self._page(request, rows, dict, links=links)

    @route("GET", API + r"/webhook-events/(?P<id>\d+)/")
    def get_event(self, request: Request) -> Any:
        allowed = self._allowed_hooks(request)
        with self.lock:
            event = next((e for e in self.events if e["id"] == int(request.params["id"])), None)
            if event is None or event["webhook_id"] not in allowed:
                raise HttpError(404, "Not found.")
            return dict(event)

    @route("GET", API + "/usage/")
    def get_usage(self, request: Request) -> Any:
        org_id = self._org(request, request.query.get("organization_id"))
        first, last = self._day(request, "start_date"), self._day(request, "end_date")
        today = self.now().astimezone(VENDOR_TZ).date()
        first = first or today.replace(day=1)  # without dates: the current month so far
        last = last or today
        if last < first:
            raise HttpError(400, "", "fields", extra={"end_date": ["end_date must not be before start_date."]})
        orgs = [org_id] if org_id else sorted(request.principal.org_ids)
        return {"results": [row for o in orgs for row in self.usage(o, first, last)]}

    def usage(self, org_id: int, first: date, last: date) -> list[dict]:
        """Usage rows of one organization for meetings held between two days (vendor time)."""
        with self.lock:
            held = [m for m in self.visible({org_id}) if m.status == "past" and self.transcript_ready(m)
                    and first <= m.start_time.astimezone(VENDOR_TZ).date() <= last]
            minutes = sum((m.end_time - m.start_time).total_seconds() for m in held) / 60
            return [{"organization_id": org_id, "organization_name": self.orgs[org_id]["name"],
                     "capability_name": cap, "usage": round(minutes * per_minute, 1), "quota": quota}
                    for cap, (quota, per_minute) in CAPABILITIES.items()]

    @route("GET", API + "/calendar/upcoming-meetings/")
    def get_upcoming_meetings(self, request: Request) -> Any:
        q = request.query
        org_id = self._org(request, q.get("organization_id"))
        raw_limit = q.get("limit") or str(UPCOMING_LIMIT_DEFAULT)
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= UPCOMING_LIMIT_MAX:
            raise HttpError(422, "", "detail_list", extra={"detail": [{
                "loc": ["query", "limit"], "msg": f"limit must be between 1 and {UPCOMING_LIMIT_MAX}",
                "type": "value_error"}]})
        orgs = {org_id} if org_id else set(request.principal.org_ids)
        integrated = bool(orgs & self.calendars)
        return {"integrated": integrated, "results": self.upcoming(orgs, int(raw_limit)) if integrated else []}
