"""Simulator of the meetlog Export API (observed-responses.md, section 4).

Page-number lists, newest first by `created_at`, with no date filter; transcripts created
`processing` and completed later (with an auto-generated report); reports added to old
transcripts; projects whose `updated_at` moves with their membership; 404 for deleted
records; per-token scopes and a per-token sliding-window rate limit.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from .base import HttpError, Request, Simulator, route
from .sample_text import sample_sentence

PREFIX = "/api/v1/export"
ALL_SCOPES = frozenset({"export:transcripts", "export:reports", "export:projects"})
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 100
TEMPLATES = [("Meeting minutes", "meeting_minutes"), ("Action items", "action_items"),
             ("Sales call review", "sales_review"), ("Протокол встречи", "protocol_ru")]
ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               429: "TOO_MANY_REQUESTS"}


@dataclass
class Transcript:
    id: str
    title: str
    status: str
    created_at: datetime
    duration_seconds: int
    source_url: str | None
    text: str | None = None
    summary: str | None = None
    file_size_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    served: dict[str, Any] = field(default_factory=dict)  # see `_served`


@dataclass
class Report:
    id: str
    transcription_id: str
    template_name: str
    template_code: str
    status: str
    is_auto_generated: bool
    created_at: datetime
    content: str | None = None
    deleted: bool = False
    served: dict[str, Any] = field(default_factory=dict)


@dataclass
class Project:
    id: str
    name: str
    description: str | None
    color: str
    created_at: datetime
    updated_at: datetime
    transcript_ids: list[str] = field(default_factory=list)
    deleted: bool = False
    served: dict[str, Any] = field(default_factory=dict)


OMIT = object()  # a `served` value: the API leaves the field out


def _served(shape: dict[str, Any], served: dict[str, Any]) -> dict[str, Any]:
    """What the API sends for a malformed record: `served` replaces the fields of `shape` it
    names (a callable gets the well-formed value; OMIT drops the field). The stored values,
    which order the lists, stay as they were."""
    for name, value in served.items():
        if name in shape:
            if value is OMIT:
                del shape[name]
            else:
                shape[name] = value(shape[name]) if callable(value) else value
    return shape


def _iso(value: datetime, style: int = 0) -> str:
    """The timestamp shapes the API sends: `Z` without a fraction, with ms, or `+03:00`."""
    value = value.astimezone(UTC)
    if style == 1:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if style == 2:
        return (value + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S") + "+03:00"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class MeetlogSimulator(Simulator):
    """The meetlog Export API with its data, tokens, scopes and limits."""

    name = "meetlog"

    def __init__(self, *, transcripts: int = 40, projects: int = 4, seed: int = 0,
                 span_days: float = 180, processing: int = 3, failed_share: float = 0.05,
                 reports_per_transcript: tuple[int, int] = (0, 2), project_share: float = 0.6,
                 requests_per_minute: float | None = 60, rate_window_seconds: float = 60.0,
                 **kw: Any) -> None:
        super().__init__(seed=seed, **kw)
        self.requests_per_minute = requests_per_minute
        self.rate_window_seconds = rate_window_seconds
        self.reports_per_transcript = tuple(reports_per_transcript)
        self.tokens: dict[str, frozenset[str]] = {}
        self.token = self.add_token()
        self.requests_by_token: Counter = Counter()
        self._calls: dict[str, deque] = defaultdict(deque)
        self.transcripts: dict[str, Transcript] = {}
        self.reports: dict[str, Report] = {}
        self.projects: dict[str, Project] = {}
        now = self.now()
        # the whole second: the API's timestamps often carry no fraction
        now = now.replace(microsecond=0)
        for i in range(transcripts):
            created = now - timedelta(seconds=int(span_days * 86400 * (i + 0.5) / max(1, transcripts)))
            status = ("processing" if i < processing
                      else "failed" if self.rng.random() < failed_share else "completed")
            self.add_transcript(created_at=created, status=status, auto_report=False)
        for t in sorted(self.transcripts.values(), key=lambda t: t.created_at):
            if t.status == "completed":
                for _ in range(self.rng.randint(*self.reports_per_transcript)):
                    made = t.created_at + timedelta(minutes=self.rng.randint(3, 600))
                    self.add_report(t.id, created_at=min(made, now - timedelta(seconds=1)))
        names = ["Team A", "Продажи", "Onboarding 🚀", "客户成功", "Research", "Hiring"]
        for i in range(projects):
            created = now - timedelta(days=span_days + 10 - i)
            project = Project(self._uuid(), names[i % len(names)] + (f" {i}" if i >= len(names) else ""),
                              self.rng.choice(["Weekly product syncs", None, "Клиентские встречи"]),
                              self.rng.choice(["#6366F1", "#10B981", "#F59E0B"]), created, created)
            self.projects[project.id] = project
        homes = list(self.projects.values())[:-1] if projects > 1 else list(self.projects.values())
        for t in sorted(self.transcripts.values(), key=lambda t: t.created_at):
            if homes and self.rng.random() < project_share:
                project = self.rng.choice(homes)  # the last project stays empty
                project.transcript_ids.append(t.id)
                project.updated_at = max(project.updated_at, t.created_at + timedelta(minutes=1))

    # ------------------------------------------------------------------ data
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add_token(self, scopes: set[str] | frozenset[str] = ALL_SCOPES) -> str:
        """Issues a `tk_live_…` token with `scopes` for the same user."""
        token = "tk_live_" + uuid.UUID(int=self.rng.getrandbits(128)).hex
        self.tokens[token] = frozenset(scopes)
        return token

    def _text(self) -> str:
        lines = [f"Speaker {1 + i % 2}: {sample_sentence(self.rng)}" for i in range(self.rng.randint(3, 12))]
        return "\n".join(lines)

    def _finish(self, t: Transcript) -> None:
        t.status = "completed"
        t.text = self._text()
        t.summary = f"Итоги: {sample_sentence(self.rng)}"
        t.file_size_mb = round(t.duration_seconds / 100 + self.rng.random(), 1)

    def add_transcript(self, *, created_at: datetime | None = None, status: str = "processing",
                       title: str | None = None, auto_report: bool = True) -> Transcript:
        """A new upload (default: now, still processing)."""
        with self.lock:
            n = len(self.transcripts)
            t = Transcript(self._uuid(), title or f"Встреча #{n}: {self.rng.choice(['Sales sync', 'Standup', '周会', 'Q2 kickoff'])}",
                           "processing", created_at or self.now().replace(microsecond=0),
                           self.rng.randint(120, 3600),
                           self.rng.choice([None, None, f"https://drive.example/f/{n}"]))
            if n % 5 == 0:
                t.extra["language"] = self.rng.choice(["ru", "en", "zh"])  # a field the docs omit
            self.transcripts[t.id] = t
            if status == "completed":
                self._finish(t)
                if auto_report:
                    self.add_report(t.id, auto=True)
            elif status == "failed":
                t.status = "failed"
            return t

    def complete(self, transcript_id: str, *, auto_report: bool = True) -> Report | None:
        """Processing finishes now: text and summary appear, and an auto-generated report."""
        with self.lock:
            t = self.transcripts[transcript_id]
            self._finish(t)
            return self.add_report(t.id, auto=True) if auto_report else None

    def fail(self, transcript_id: str) -> None:
        with self.lock:
            self.transcripts[transcript_id].status = "failed"

    def add_report(self, transcript_id: str, *, created_at: datetime | None = None, auto: bool = False,
                   status: str = "completed", template: tuple[str, str] | None = None) -> Report:
        """A user runs a template on a transcript (default: now)."""
        with self.lock:
            name, code = template or (TEMPLATES[0] if auto else self.rng.choice(TEMPLATES))
            r = Report(self._uuid(), transcript_id, name, code, status, auto,
                       created_at or self.now().replace(microsecond=0))
            if status == "completed":
                r.content = self._content(r)
            self.reports[r.id] = r
            return r

    def _content(self, r: Report) -> str:
        items = "\n".join(f"- {sample_sentence(self.rng)}" for _ in range(self.rng.randint(1, 4)))
        return f"## {r.template_name}\n\n{sample_sentence(self.rng)}\n\n## Action items\n{items}\n"

    def complete_report(self, report_id: str) -> None:
        with self.lock:
            r = self.reports[report_id]
            r.status = "completed"
            r.content = self._content(r)

    def rename(self, transcript_id: str, title: str) -> None:
        with self.lock:
            self.transcripts[transcript_id].title = title

    def _touch(self, project: Project) -> None:
        project.updated_at = max(self.now().replace(microsecond=0), project.updated_at + timedelta(seconds=1))

    def move(self, transcript_id: str, to_project: str | None) -> None:
        """Moves a transcript out of its projects and into `to_project` (None: out only)."""
        with self.lock:
            for p in self.projects.values():
                if transcript_id in p.transcript_ids:
                    p.transcript_ids.remove(transcript_id)
                    self._touch(p)
            if to_project is not None:
                p = self.projects[to_project]
                p.transcript_ids.append(transcript_id)
                self._touch(p)

    def delete_transcript(self, transcript_id: str) -> None:
        """The user deletes a transcript: its reports go too, and it leaves its projects."""
        with self.lock:
            self.transcripts[transcript_id].deleted = True
            for r in self.reports.values():
                if r.transcription_id == transcript_id:
                    r.deleted = True
            self.move(transcript_id, None)

    def delete_report(self, report_id: str) -> None:
        with self.lock:
            self.reports[report_id].deleted = True

    def delete_project(self, project_id: str) -> None:
        with self.lock:
            self.projects[project_id].deleted = True

    # ------------------------------------------------------------------ views
    def live_transcripts(self) -> list[Transcript]:
        return sorted((t for t in self.transcripts.values() if not t.deleted),
                      key=lambda t: (t.created_at, t.id), reverse=True)

    def live_reports(self) -> list[Report]:
        return sorted((r for r in self.reports.values() if not r.deleted),
                      key=lambda r: (r.created_at, r.id), reverse=True)

    def live_projects(self) -> list[Project]:
        return sorted((p for p in self.projects.values() if not p.deleted),
                      key=lambda p: (p.created_at, p.id), reverse=True)

    def report_ids(self, transcript_id: str) -> list[str]:
        return [r.id for r in sorted(self.reports.values(), key=lambda r: r.created_at)
                if r.transcription_id == transcript_id and not r.deleted]

    def _transcript_fields(self, t: Transcript) -> dict[str, Any]:
        style = int(t.id[0], 16) % 3
        return {"id": t.id, "title": t.title, "status": t.status, "created_at": _iso(t.created_at, style),
                "duration_seconds": t.duration_seconds, "source_url": t.source_url, **t.extra}

    def transcript_item(self, t: Transcript) -> dict[str, Any]:
        return _served(self._transcript_fields(t), t.served)

    def transcript_detail(self, t: Transcript) -> dict[str, Any]:
        done = t.status == "completed"
        return _served({**self._transcript_fields(t), "text": t.text if done else None,
                        "summary": t.summary if done else None, "file_size_mb": t.file_size_mb,
                        "report_ids": self.report_ids(t.id) if done else []}, t.served)

    def _report_fields(self, r: Report) -> dict[str, Any]:
        return {"id": r.id, "transcription_id": r.transcription_id, "template_name": r.template_name,
                "template_code": r.template_code, "status": r.status,
                "is_auto_generated": r.is_auto_generated, "created_at": _iso(r.created_at, int(r.id[0], 16) % 3)}

    def report_item(self, r: Report) -> dict[str, Any]:
        return _served(self._report_fields(r), r.served)

    def report_detail(self, r: Report) -> dict[str, Any]:
        return _served({**self._report_fields(r), "content": r.content}, r.served)

    def project_item(self, p: Project) -> dict[str, Any]:
        return _served({"id": p.id, "name": p.name, "description": p.description, "color": p.color,
                        "created_at": _iso(p.created_at), "updated_at": _iso(p.updated_at, 1)}, p.served)

    # ------------------------------------------------------------------ malformed records
    def add_bad_records(self) -> dict[str, str]:
        """One malformed record of each kind in `BAD_RECORD_KINDS`, in the fields the source
        reads; returns {kind: id in its table}. meetlog has no timed transcript segments (a
        transcript's `text` is one string): the two segment kinds are a completed transcript
        whose `text` is null, and a transcript listed without `created_at`, its start."""
        now = self.now().replace(microsecond=0)
        with self.lock:
            def transcript(days: float, served: dict[str, Any], status: str = "completed") -> Transcript:
                t = self.add_transcript(created_at=now - timedelta(days=days), status=status,
                                        auto_report=status == "completed")
                t.served = served
                return t

            as_text = transcript(1.5, {"duration_seconds": str})  # 1842 sent as "1842"
            bad_at = transcript(2.5, {"created_at": "2026-13-45T25:61:00Z"}, status="processing")
            as_json = transcript(3.5, {"report_ids": lambda ids: orjson.dumps(ids).decode()})
            # a status that became an object
            changed = transcript(4.5, {"status": lambda status: {"code": status, "progress": 100}})
            no_text = transcript(5.5, {})
            no_text.text = None
            no_start = transcript(6.5, {"created_at": OMIT})
            made = {as_text.id, bad_at.id, as_json.id, changed.id, no_text.id, no_start.id}
            host = next(t for t in self.live_transcripts() if t.status == "completed" and t.id not in made)
            empty_at = self.add_report(host.id, created_at=now - timedelta(days=7.5))
            empty_at.served = {"created_at": ""}
        return {"number_as_string": as_text.id, "bad_timestamp": bad_at.id, "empty_timestamp": empty_at.id,
                "object_as_json_string": as_json.id, "type_change": changed.id,
                "segment_null_text": no_text.id, "segment_no_start": no_start.id}

    def memberships(self) -> set[tuple[str, str]]:
        """(project_id, transcript_id) of every live project, as Get project lists them."""
        return {(p.id, tid) for p in self.live_projects() for tid in p.transcript_ids}

    # ------------------------------------------------------------------ protocol
    def source_config(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "api_token": self.token}

    def error_body(self, error: HttpError) -> Any:
        return {"error_code": error.code or ERROR_CODES.get(error.status, "ERROR"),
                "error_message": error.message, "status_code": error.status}

    def authenticate(self, request: Request) -> Any:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            raise HttpError(401, "Invalid, revoked or expired API token")
        return token

    def before_handle(self, request: Request) -> dict[str, str]:
        token = request.principal
        with self.lock:
            self.requests_by_token[token] += 1
        if self.requests_per_minute:
            limit = max(1, math.floor(self.requests_per_minute * self.rate_window_seconds / 60 + 1e-9))
            now = time.monotonic()
            with self.lock:
                calls = self._calls[token]
                while calls and calls[0] <= now - self.rate_window_seconds:
                    calls.popleft()
                if len(calls) >= limit:
                    wait = max(1, math.ceil(calls[0] + self.rate_window_seconds - now))
                    raise HttpError(429, "Rate limit exceeded for the API key",
                                    headers={"Retry-After": str(wait)})
                calls.append(now)
        if not request.path.startswith(PREFIX + "/"):
            raise HttpError(403, "API keys may only be used on export endpoints")
        return {}

    def _need(self, request: Request, scope: str) -> None:
        if scope not in self.tokens[request.principal]:
            raise HttpError(403, f"Missing scope {scope}")

    def _page(self, request: Request, rows: list, shape) -> dict[str, Any]:
        try:
            page = int(request.query.get("page", 1))
            size = int(request.query.get("page_size", PAGE_SIZE_DEFAULT))
        except ValueError:
            raise HttpError(400, "page and page_size must be integers") from None
        if page < 1 or not 1 <= size <= PAGE_SIZE_MAX:
            raise HttpError(400, f"page must be >= 1 and page_size between 1 and {PAGE_SIZE_MAX}")
        chunk = rows[(page - 1) * size: page * size]
        return {"items": [shape(x) for x in chunk],
                "meta": {"page": page, "page_size": size, "total": len(rows),
                         "total_pages": math.ceil(len(rows) / size)}}

    # ------------------------------------------------------------------ routes
    @route("GET", PREFIX + "/transcripts")
    def list_transcripts(self, request: Request) -> Any:
        self._need(request, "export:transcripts")
        with self.lock:
            return self._page(request, self.live_transcripts(), self.transcript_item)

    @route("GET", PREFIX + r"/transcripts/(?P<id>[^/]+)")
    def get_transcript(self, request: Request) -> Any:
        self._need(request, "export:transcripts")
        with self.lock:
            t = self.transcripts.get(request.params["id"])
            if t is None or t.deleted:
                raise HttpError(404, "Transcript not found")
            return self.transcript_detail(t)

    @route("GET", PREFIX + "/reports")
    def list_reports(self, request: Request) -> Any:
        self._need(request, "export:reports")
        with self.lock:
            return self._page(request, self.live_reports(), self.report_item)

    @route("GET", PREFIX + r"/reports/(?P<id>[^/]+)")
    def get_report(self, request: Request) -> Any:
        self._need(request, "export:reports")
        with self.lock:
            r = self.reports.get(request.params["id"])
            if r is None or r.deleted:
                raise HttpError(404, "Report not found")
            return self.report_detail(r)

    @route("GET", PREFIX + "/projects")
    def list_projects(self, request: Request) -> Any:
        self._need(request, "export:projects")
        with self.lock:
            return self._page(request, self.live_projects(), self.project_item)

    @route("GET", PREFIX + r"/projects/(?P<id>[^/]+)")
    def get_project(self, request: Request) -> Any:
        self._need(request, "export:projects")
        with self.lock:
            p = self.projects.get(request.params["id"])
            if p is None or p.deleted:
                raise HttpError(404, "Project not found")
            members = [self.transcripts[tid] for tid in p.transcript_ids]
            return {**self.project_item(p),
                    "transcripts": [{"id": t.id, "title": t.title, "status": t.status,
                                     "created_at": _iso(t.created_at)} for t in members]}
