"""Simulator of the Meemo external API (observed-responses.md, section 3).

OAuth 2 client credentials with short, configurable token lifetimes (and expiry on demand),
several organizations per application, page-number paging with absolute `next` URLs,
whole-day date filters counted in the vendor's time zone (UTC+7), stage statuses that finish
after the meeting, confidential segments left out of transcripts, Markdown or legacy JSON
summaries, signed recording URLs that change on every call, webhook signing secrets.
Lifecycles move only when a test says so (`complete`, `end`, `add_meeting`...), never with
the clock, so that two runs against the same simulator see the same data.
"""

from __future__ import annotations

import math
import secrets
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
LEGACY_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
CAPABILITIES = {"meeting_minutes": 6000, "transcription": 500, "summarization": 500, "bot_meetings": 200}
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
    stages: dict[str, dict | None]
    host: dict
    summary_complete: bool = False
    calendar_event: dict | None = None
    location: str | None = None
    language: str = "id"
    keywords: list[str] = field(default_factory=list)
    num_cluster: int | None = None
    segments: list[dict] = field(default_factory=list)  # every segment, confidential ones too
    summary: str | dict | None = None
    notes: str | None = None
    summary_keywords: list[str] = field(default_factory=list)
    participants: list[dict] = field(default_factory=list)
    has_recording: bool = True
    extra: dict = field(default_factory=dict)  # fields the docs do not list
    deleted: bool = False
    style: int = 0


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


def _stage(status: str | None, description: str | None = None) -> dict | None:
    return None if status is None else {"status": status, "description": description}


class MeemoSimulator(Simulator):
    """Meemo: applications reading several organizations, meetings whose transcripts and
    summaries finish later, webhooks and their delivery log, usage against quotas."""

    name = "meemo"

    def __init__(self, *, organizations: int = 2, meetings: int = 24, upcoming: int = 2,
                 legacy: int = 2, span_days: float = 20, processing_share: float = 0.25,
                 segments: tuple[int, int] = (4, 16), confidential_share: float = 0.1,
                 webhooks: int = 2, events: tuple[int, int] = (2, 8),
                 token_ttl_seconds: float = 3600, seed: int = 0, **kw: Any) -> None:
        super().__init__(seed=seed, **kw)
        self.token_ttl_seconds = token_ttl_seconds
        self.segment_range = segments
        self.confidential_share = confidential_share
        self.processing_share = processing_share
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
        now = self.now()
        for n in range(organizations):
            org = self.add_organization(f"PT Nusantara {n + 1}" if n % 2 == 0 else f"Kyiv Labs {n + 1}")
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
                    state: str = "completed", title: str | None = None) -> Meeting:
        """A new meeting; `state` is upcoming, ongoing, processing, completed, failed or manual."""
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
            meeting = Meeting(
                id=mid, org_id=org_id, title=title or f"Meeting #{n} – {rng.choice(['Roadmap', 'Sync', 'Демо', '客户', 'Rapat'])}",
                created_at=created_at, start_time=start, end_time=None, status="upcoming",
                stages={"recording": None, "transcription": None, "summarization": None},
                host=dict(host), location=rng.choice(["Zoom", "Google Meet", "Jakarta HQ", None]),
                language=rng.choice(["id", "en", "en-US"]), keywords=rng.sample(["budget", "hiring", "Q3", "launch"], 2),
                has_recording=state != "manual", style=n % 3)
            if from_calendar:
                meeting.calendar_event = {
                    "event_id": f"evt_{mid}", "summary": meeting.title, "organizer_email": host["email"],
                    "attendees": [{"email": u["email"], "display_name": u["name"], "response_status": "accepted"}
                                  for u in rng.sample(self.users[org_id], 2)],
                    "meeting_link": f"https://meet.example/{mid}", "start_time": _iso(start),
                    "end_time": _iso(start + timedelta(seconds=duration))}
            if n % 5 == 0:
                meeting.extra["source_platform"] = rng.choice(["zoom", "gmeet", "upload"])
            people = rng.sample(self.users[org_id], rng.randint(1, 3))
            meeting.participants = [{"id": u["id"], "name": u["name"], "email": u["email"],
                                     "position": rng.choice(["Engineer", "Manager", None]),
                                     "department": rng.choice(["R&D", "Sales", None])} for u in people]
            meeting.participants.append({"name": "Guest " + rng.choice(NAMES), "position": None, "department": None})
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
                meeting.summary = (f"## Ringkasan\n\n- {sample_sentence(rng)}\n- {sample_sentence(rng)}\n\n"
                                   f"**Next steps:** {sample_sentence(rng)}")
            meeting.notes = sample_sentence(rng) if rng.random() < 0.7 else None
            meeting.summary_keywords = rng.sample(["pricing", "timeline", "ценообразование", "导入", "anggaran"], 2)
            meeting.num_cluster = len(speakers)
            self.meetings[mid] = meeting
            self._set_state(meeting, state, duration)
            return meeting

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
        self.webhooks[hid] = {
            "id": hid, "target_url": f"https://hooks.example/{org_id}/{hid}",
            "events": self.rng.sample(["meeting.completed", "transcript.ready", "summary.ready"], 2),
            "is_active": self.rng.random() < 0.8, "description": f"Sync to CRM ({org_id})",
            "created_at": _iso(self.now() - timedelta(days=60)), "organization_id": org_id,
            "failure_count": self.rng.randint(0, 3), "last_failure_reason": None,
            "secret_key": f"whsec_{self.rng.getrandbits(128):032x}"}
        return hid

    def add_event(self, webhook_id: int, *, created_at: datetime | None = None,
                  status: str | None = None) -> dict:
        rng = self.rng
        status = status or rng.choice(["delivered", "delivered", "failed", "pending"])
        if status == "pending" and created_at and created_at < self.now() - timedelta(days=1):
            status = "failed"  # retries give up within a day
        event = {"id": self._id(), "webhook_id": webhook_id,
                 "event_uuid": f"{rng.getrandbits(128):032x}", "event_type": rng.choice(self.webhooks[webhook_id]["events"]),
                 "status": status, "response_status": {"delivered": 200, "failed": 500}.get(status),
                 "attempt_count": 1 if status != "failed" else 3,
                 "created_at": _iso(created_at or self.now())}
        with self.lock:
            self.events.append(event)
        return event

    def deliver(self, event_id: int) -> None:
        """A pending event is delivered now (the event row changes, its created_at does not)."""
        with self.lock:
            event = next(e for e in self.events if e["id"] == event_id)
            event.update(status="delivered", response_status=200, attempt_count=event["attempt_count"] + 1)

    # ------------------------------------------------------------------ views (also used by tests)
    def visible(self, org_ids: set[int] | None = None) -> list[Meeting]:
        """Meetings the list shows, newest start first."""
        rows = [m for m in self.meetings.values() if not m.deleted and (org_ids is None or m.org_id in org_ids)]
        return sorted(rows, key=lambda m: (m.start_time, m.id), reverse=True)

    def list_item(self, m: Meeting) -> dict[str, Any]:
        return {"id": m.id, "title": m.title, "start_time": _iso(m.start_time, m.style),
                "end_time": _iso(m.end_time, m.style), "created_at": _iso(m.created_at, m.style),
                "status": m.status, **{k: dict(v) if v else None for k, v in m.stages.items()},
                "summary_complete": m.summary_complete, "host_name": m.host["name"],
                "organization_id": m.org_id, "calendar_event": m.calendar_event, **m.extra}

    def detail(self, m: Meeting) -> dict[str, Any]:
        running = m.end_time is None
        return {**self.list_item(m), "location": m.location, "host": m.host, "language": m.language,
                "keywords": m.keywords, "participant_count": len(m.participants),
                "duration_seconds": None if running else (m.end_time - m.start_time).total_seconds(),
                "num_cluster": m.num_cluster if not running else None}

    def transcript_ready(self, m: Meeting) -> bool:
        return (m.stages["transcription"] or {}).get("status") == "completed"

    def summary_ready(self, m: Meeting) -> bool:
        return (m.stages["summarization"] or {}).get("status") == "completed"

    def served_segments(self, m: Meeting) -> list[dict]:
        """The transcript as served: confidential segments left out."""
        if not self.transcript_ready(m):
            return []
        return [{k: v for k, v in s.items() if k != "confidential"} for s in m.segments if not s["confidential"]]

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
        return error.extra if error.code == "fields" else {"detail": error.message}

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

    def _page(self, request: Request, rows: list, serialize: Any) -> dict[str, Any]:
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

        return {"count": len(rows), "next": link(page + 1), "previous": link(page - 1),
                "results": [serialize(r) for r in rows[(page - 1) * size: page * size]]}

    def _meeting(self, request: Request) -> Meeting:
        m = self.meetings.get(int(request.params["id"]))
        if m is None or m.deleted:
            raise HttpError(404, "Not found.")
        if m.org_id not in request.principal.org_ids:
            raise HttpError(403, "You do not have permission to access this meeting.")
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
            raise HttpError(400, "", "fields", extra={"error": "unsupported_grant_type"})
        app = self.apps.get(form.get("client_id", ""))
        if app is None or not secrets.compare_digest(app.client_secret, form.get("client_secret", "")):
            raise HttpError(401, "", "fields", extra={"error": "invalid_client"})
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = (form["client_id"], self.now() + timedelta(seconds=self.token_ttl_seconds))
            self.tokens_issued.append(token)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl_seconds,
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
            m = self._meeting(request)
            ready = self.summary_ready(m)
            return {"meeting_id": m.id, "title": m.title, "summary": m.summary if ready else None,
                    "notes": m.notes if ready else None, "keywords": m.summary_keywords if ready else []}

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
            sig = secrets.token_hex(12)  # signed anew on every call
            duration = (m.end_time - m.start_time).total_seconds() if m.end_time else None
            return {"meeting_id": m.id, "title": m.title, "duration": duration,
                    "assets": [{"media_kind": "audio", "url": f"https://cdn.example/{m.id}.m4a?sig={sig}",
                                "mime_type": "audio/mp4", "format": "m4a"},
                               {"media_kind": "video", "url": f"https://cdn.example/{m.id}.mp4?sig={sig}",
                                "mime_type": "video/mp4", "format": "mp4"}],
                    "recording_url": f"https://cdn.example/{m.id}.m4a?sig={sig}", "format": "m4a",
                    "video_url": f"https://cdn.example/{m.id}.mp4?sig={sig}", "video_format": "mp4"}

    @route("GET", API + "/topics/")
    def get_topics(self, request: Request) -> Any:
        org_id = self._org(request, request.query.get("organization_id"))
        orgs = [org_id] if org_id else sorted(request.principal.org_ids)
        return [t for o in orgs for t in self.topics[o]]

    @route("GET", API + "/webhooks/")
    def list_webhooks(self, request: Request) -> Any:
        org_id = self._org(request, request.query.get("organization_id"))
        orgs = {org_id} if org_id else request.principal.org_ids
        with self.lock:
            rows = sorted((h for h in self.webhooks.values() if h["organization_id"] in orgs),
                          key=lambda h: h["id"], reverse=True)
            return self._page(request, rows, dict)

    @route("GET", API + "/webhook-events/")
    def list_events(self, request: Request) -> Any:
        allowed = {h for h, w in self.webhooks.items() if w["organization_id"] in request.principal.org_ids}
        wanted = request.query.get("webhook_id")
        if wanted:
            try:
                hook = int(wanted)
            except ValueError:
                raise HttpError(400, "", "fields", extra={"webhook_id": ["A valid integer is required."]}) from None
            if hook not in allowed:
                raise HttpError(404, "Not found.")
            allowed = {hook}
        with self.lock:
            rows = sorted((e for e in self.events if e["webhook_id"] in allowed),
                          key=lambda e: (e["created_at"], e["id"]), reverse=True)
            return self._page(request, rows, dict)

    @route("GET", API + "/usage/")
    def get_usage(self, request: Request) -> Any:
        org_id = self._org(request, request.query.get("organization_id"))
        first, last = self._day(request, "start_date"), self._day(request, "end_date")
        if first is None or last is None:
            raise HttpError(400, "", "fields", extra={"start_date": ["This field is required."]})
        orgs = [org_id] if org_id else sorted(request.principal.org_ids)
        return {"results": [row for o in orgs for row in self.usage(o, first, last)]}

    def usage(self, org_id: int, first: date, last: date) -> list[dict]:
        """Usage rows of one organization for meetings held between two days (vendor time)."""
        with self.lock:
            held = [m for m in self.visible({org_id}) if m.status == "past"
                    and first <= m.start_time.astimezone(VENDOR_TZ).date() <= last]
            used = {"meeting_minutes": round(sum((m.end_time - m.start_time).total_seconds() for m in held) / 60, 1),
                    "transcription": sum(self.transcript_ready(m) for m in held),
                    "summarization": sum(self.summary_ready(m) for m in held),
                    "bot_meetings": sum(m.has_recording for m in held)}
            return [{"organization_id": org_id, "organization_name": self.orgs[org_id]["name"],
                     "capability_name": cap, "usage": used[cap], "quota": quota}
                    for cap, quota in CAPABILITIES.items()]
