"""Simulator of the Meetric partner REST API (observed-responses.md, section 2)."""

from __future__ import annotations

import base64
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from .base import HttpError, Request, Simulator, route
from .base import vendor_instant as _iso
from .sample_text import sample_sentence

PREFIX = "/api/v1/rest"
ALL_SCOPES = frozenset({"users", "teams", "departments", "conversations", "transcripts",
                        "insights", "recordings", "notetaker"})
WINDOW = timedelta(days=30)
CURSOR_TTL = timedelta(minutes=10)
INSIGHT_TYPES = ("action_item", "question", "objection", "next_step", "decision")


@dataclass
class Token:
    scopes: frozenset[str] = ALL_SCOPES
    include_recordings: bool = True


@dataclass
class Conversation:
    """One conversation as the vendor stores it; `public()` is its list item."""

    id: str
    title: str
    date: datetime
    medium: str
    status: str
    updated_at: datetime
    fields: dict[str, Any]
    transcript: dict[str, Any] | None = None
    insights: list[dict] = field(default_factory=list)
    topics: list[dict] = field(default_factory=list)
    summary: str | None = None
    has_recording: bool = True
    deleted: bool = False
    # list fields served in place of the real ones (a malformed record: `add_bad_records`)
    overrides: dict[str, Any] = field(default_factory=dict)



class MeetricPartnerSimulator(Simulator):
    """Tokens and scopes, cursor paging, the 30-day window, 60 requests a minute, the daily
    quota of unique conversations, late processing, deletions, both transcript shapes."""

    name = "meetric_partner"

    def __init__(self, *, conversations: int = 60, seed: int = 0, span_days: float = 40,
                 processing_share: float = 0.1, segments: tuple[int, int] = (4, 24),
                 processing_hours: float = 12, requests_per_minute: int | None = 60,
                 daily_quota: int | None = 1000,
                 **kw: Any) -> None:
        super().__init__(seed=seed, **kw)
        self.requests_per_minute = requests_per_minute
        self.daily_quota = daily_quota
        self.segments = segments
        self.processing_share = processing_share
        self.processing_window = timedelta(hours=processing_hours)
        self.tokens: dict[str, Token] = {}
        self.bad_record_extras: dict[str, str] = {}
        self.token = self.add_token()
        self._calls: dict[str, deque] = defaultdict(deque)
        self._touched: dict[tuple[str, str], set[str]] = defaultdict(set)
        rng = self.rng
        self.account = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "name": "Nordlicht GmbH",
                        "domain": "nordlicht.example", "timezone": "Europe/Berlin",
                        "branding": {"logo_url": "https://cdn.example/logo.png", "primary_color": "#0a84ff"}}
        self.departments = [{"id": self._uuid(), "name": name, "created_at": _iso(self.now() - timedelta(days=400 + i))}
                            for i, name in enumerate(["B2B Sales", "Customer Success", "Отдел продаж"])]
        self.users = [{"id": self._uuid(), "name": name, "email": f"user{i}@nordlicht.example",
                       "role": "admin" if i == 0 else rng.choice(["manager", "member", "member"]),
                       "department_id": self.departments[i % 3]["id"], "team_ids": [],
                       "created_at": _iso(self.now() - timedelta(days=300 - i), i % 3)}
                      for i, name in enumerate(["Erik Lindström", "María José", "李小龙", "Ольга Петрова",
                                                "Yusuf Ali", "Zoë Adams", "אורי כהן", "Jane Doe"])]
        self.teams = []
        for i in range(3):
            members = self.users[i::3]
            team = {"id": self._uuid(), "name": f"Team {i + 1}", "department_id": self.departments[i]["id"],
                    "members": [{k: u[k] for k in ("id", "name", "email", "role")} for u in members]}
            for u in members:
                u["team_ids"].append(team["id"])
            self.teams.append(team)
        self.conversations: dict[str, Conversation] = {}
        now = self.now()
        for i in range(conversations):
            date = now - timedelta(seconds=span_days * 86400 * (i + 0.5) / max(1, conversations))
            status = self._random_status()
            if status == "processing" and now - date > self.processing_window:
                status = "completed"  # processing takes minutes to hours, not weeks
            self.add_conversation(date=date, status=status)
        self.deliveries = [{"id": self._uuid(), "event": "conversation.completed",
                            "conversation_id": cid, "status": rng.choice(["delivered", "failed", "pending"]),
                            "response_status": 200, "attempts": 1 + i % 3,
                            "created_at": _iso(now - timedelta(days=i * 2, minutes=5)),
                            "last_attempt_at": _iso(now - timedelta(days=i * 2))}
                           for i, cid in enumerate(list(self.conversations)[:5])]

    # ------------------------------------------------------------------ data
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _random_status(self) -> str:
        roll = self.rng.random()
        return "processing" if roll < self.processing_share else "failed" if roll < self.processing_share + 0.03 else "completed"

    def add_token(self, scopes: set[str] | frozenset[str] = ALL_SCOPES, include_recordings: bool = True) -> str:
        token = "mt_" + uuid.UUID(int=self.rng.getrandbits(128)).hex
        self.tokens[token] = Token(frozenset(scopes), include_recordings)
        return token

    def add_conversation(self, *, date: datetime | None = None, status: str = "completed",
                         medium: str | None = None) -> Conversation:
        rng = self.rng
        cid = self._uuid()
        date = date or self.now() - timedelta(minutes=30)
        medium = medium or rng.choice(["call", "video", "video", "chat"])
        user = rng.choice(self.users)
        dept = next(d for d in self.departments if d["id"] == user["department_id"])
        n = len(self.conversations)
        fields = {
            "company": rng.choice(["Acme", "Globex", "Initech", "Umbrella", None]),
            "duration": rng.randint(300, 3600),
            "sentiment": rng.choice(["positive", "neutral", "negative", None]),
            "conversation_type": rng.choice(["sales", "support", "onboarding"]),
            "department": {"id": dept["id"], "name": dept["name"]},
            "user": {"id": user["id"], "name": user["name"], "email": user["email"]},
            "participants": [{"name": "Jane Customer", "email": f"jane{n}@client.example", "role": "customer"},
                             {"name": user["name"], "email": user["email"], "role": "host"}],
        }
        if n % 7 == 0:
            fields["crm_deal_id"] = f"deal-{n}"  # a field the docs do not list
        conv = Conversation(cid, f"Discovery call #{n} – {fields['company'] or 'unknown'}", date, medium,
                            "processing", date + timedelta(minutes=1), fields,
                            has_recording=rng.random() < 0.8)
        self.conversations[cid] = conv
        if status == "completed":
            self._process(conv, conv.date + timedelta(minutes=20))
        elif status == "failed":
            conv.status = "failed"
        return conv

    def _process(self, conv: Conversation, when: datetime) -> None:
        rng = self.rng
        n_seg = rng.randint(*self.segments)
        speakers = [conv.fields["user"]["name"], "Jane Customer"]
        if conv.medium == "chat":
            conv.transcript = {"messages": [
                {"sender": speakers[i % 2], "sent_at": _iso(conv.date + timedelta(seconds=15 * i + rng.random()), i % 3),
                 "content": sample_sentence(rng)} for i in range(n_seg)]}
        else:
            start = 0.0
            sentences = []
            for i in range(n_seg):
                length = round(rng.uniform(1.0, 9.0), 2)
                sentences.append({"speaker_name": speakers[i % 2], "start": round(start, 2),
                                  "end": round(start + length, 2), "text": sample_sentence(rng)})
                start += length + round(rng.uniform(0.1, 1.5), 2)
            conv.transcript = {"sentences": sentences}
        conv.insights = [{"id": self._uuid(), "type": rng.choice(INSIGHT_TYPES), "text": sample_sentence(rng),
                          "speaker_name": rng.choice(speakers), "start": round(rng.uniform(0, 600), 2)}
                         for _ in range(rng.randint(0, 5))]
        names = rng.sample(["pricing", "security", "onboarding", "roadmap", "ценообразование", "导入"], rng.randint(0, 3))
        conv.topics = [{"name": t, "mentions": rng.randint(1, 9), "share": round(rng.random(), 3)} for t in names]
        conv.summary = f"Summary of {conv.title}: {sample_sentence(rng)}"
        conv.status = "completed"
        conv.updated_at = max(when, conv.updated_at + timedelta(seconds=1))

    def add_bad_records(self) -> dict[str, str]:
        """One malformed record of each kind in `BAD_RECORD_KINDS`, in the fields the source
        reads: the list (and detail) fields, the transcript, the insights and topics.

        Returns {kind: id as the source names it}: a conversation id, or `<id>#<index>` for a
        transcript segment. `self.bad_record_extras` names the further malformed parts:
        a bad `updated_at`, a chat message without `sent_at`, an insight `start` sent as
        text, an insight sent as JSON text, a topic's `mentions` sent as text.
        """
        now = self.now()

        def conversation(days: float, medium: str = "call") -> Conversation:
            segments, self.segments = self.segments, (max(4, self.segments[0]), max(4, self.segments[1]))
            try:  # long enough for the segments made bad below
                return self.add_conversation(date=now - timedelta(days=days), status="completed", medium=medium)
            finally:
                self.segments = segments

        number = conversation(1.5)
        number.fields["duration"] = str(number.fields["duration"])  # "1800"
        number.insights = number.insights or [{"id": self._uuid(), "type": "question", "text": "Pricing?",
                                               "speaker_name": "Jane Customer", "start": 12.0}]
        number.insights[0]["start"] = str(number.insights[0]["start"])  # "12.0"
        number.topics = [{"name": "pricing", "mentions": "3", "share": 0.25}]

        bad_date = conversation(2.5)
        bad_date.overrides["date"] = "2026-13-45T25:61:00Z"

        empty = conversation(3.5, medium="chat")
        empty.overrides["updated_at"] = ""
        del empty.transcript["messages"][1]["sent_at"]

        as_text = conversation(4.5)
        as_text.fields["department"] = orjson.dumps(as_text.fields["department"]).decode()
        as_text.fields["user"] = orjson.dumps(as_text.fields["user"]).decode()
        insight = {"id": self._uuid(), "type": "decision", "text": "We go ahead.",
                   "speaker_name": "Jane Customer", "start": 30.5}
        as_text.insights = [*as_text.insights, orjson.dumps(insight).decode()]

        changed = conversation(5.5)
        changed.fields["participants"] = "Jane Customer <jane@client.example>, " + changed.fields["user"]["name"]

        null_text = conversation(6.5)
        null_text.transcript["sentences"][1]["text"] = None

        no_start = conversation(7.5)
        del no_start.transcript["sentences"][2]["start"]

        bad_updated = conversation(8.5)
        bad_updated.overrides["updated_at"] = "yesterday"

        self.bad_record_extras = {
            "bad_updated_at": bad_updated.id,
            "chat_message_no_sent_at": f"{empty.id}#1",
            "insight_start_as_string": number.insights[0]["id"],
            "insight_as_json_string": insight["id"],
            "topic_mentions_as_string": f"{number.id}/pricing",
        }
        return {"number_as_string": number.id, "bad_timestamp": bad_date.id, "empty_timestamp": empty.id,
                "object_as_json_string": as_text.id, "type_change": changed.id,
                "segment_null_text": f"{null_text.id}#1", "segment_no_start": f"{no_start.id}#2"}

    def complete(self, conversation_id: str) -> None:
        """The vendor finishes processing a conversation now."""
        with self.lock:
            self._process(self.conversations[conversation_id], self.now())

    def delete(self, conversation_id: str) -> None:
        with self.lock:
            self.conversations[conversation_id].deleted = True

    def rename(self, conversation_id: str, title: str) -> None:
        with self.lock:
            conv = self.conversations[conversation_id]
            conv.title = title
            conv.updated_at = self.now()

    def visible(self) -> list[Conversation]:
        """Conversations the list shows now, newest first."""
        cutoff = self.now() - WINDOW
        rows = [c for c in self.conversations.values() if not c.deleted and c.date >= cutoff]
        return sorted(rows, key=lambda c: (c.date, c.id), reverse=True)

    def public(self, conv: Conversation) -> dict[str, Any]:
        return {"id": conv.id, "title": conv.title, "date": _iso(conv.date), "medium": conv.medium,
                "status": conv.status, **conv.fields,
                "updated_at": _iso(conv.updated_at, 1 if conv.id[0] in "01234" else 0), **conv.overrides}

    # ------------------------------------------------------------------ protocol
    def source_config(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "api_token": self.token}

    def error_body(self, error: HttpError) -> Any:
        names = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                 429: "Too Many Requests"}
        return {"statusCode": error.status, "message": error.message,
                "error": names.get(error.status, "Error"), **error.extra}

    def authenticate(self, request: Request) -> Any:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            raise HttpError(401, "Invalid or revoked API token")
        return token

    def before_handle(self, request: Request) -> dict[str, str]:
        if not self.requests_per_minute:
            return {}
        now = self.now().timestamp()
        with self.lock:
            calls = self._calls[request.principal]
            while calls and calls[0] <= now - 60:
                calls.popleft()
            if len(calls) >= self.requests_per_minute:
                wait = max(1, int(calls[0] + 60 - now) + 1)
                raise HttpError(429, "Rate limit exceeded. Please try again later.", headers={"Retry-After": str(wait)},
                                extra={"retryAfter": wait})
            calls.append(now)
        return {}

    def _meta(self, request: Request) -> dict[str, str]:
        return {"token_prefix": request.principal[:11], "timestamp": _iso(self.now())}

    def _need(self, request: Request, scope: str) -> None:
        if scope not in self.tokens[request.principal].scopes:
            raise HttpError(403, f"Token does not have the '{scope}' scope")

    def _touch(self, request: Request, conversation_id: str) -> Conversation:
        conv = self.conversations.get(conversation_id)
        if conv is None or conv.deleted:
            raise HttpError(404, "Conversation not found")
        if self.daily_quota:
            now = self.now()
            with self.lock:
                touched = self._touched[(request.principal, now.date().isoformat())]
                if conversation_id not in touched and len(touched) >= self.daily_quota:
                    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
                    wait = int((midnight - now).total_seconds()) + 1
                    raise HttpError(429, "Daily conversation quota exceeded",
                                    headers={"Retry-After": str(wait)}, extra={"retryAfter": wait})
                touched.add(conversation_id)
        return conv

    # ------------------------------------------------------------------ routes
    @route("GET", PREFIX + "/account")
    def get_account(self, request: Request) -> Any:
        return {"account": self.account, "_meta": self._meta(request)}

    @route("GET", PREFIX + "/users")
    def get_users(self, request: Request) -> Any:
        self._need(request, "users")
        return {"users": self.users, "_meta": self._meta(request)}

    @route("GET", PREFIX + "/teams")
    def get_teams(self, request: Request) -> Any:
        self._need(request, "teams")
        return {"teams": self.teams, "_meta": self._meta(request)}

    @route("GET", PREFIX + "/departments")
    def get_departments(self, request: Request) -> Any:
        self._need(request, "departments")
        return {"departments": self.departments, "_meta": self._meta(request)}

    @route("GET", PREFIX + "/webhooks/deliveries")
    def get_deliveries(self, request: Request) -> Any:
        cutoff = _iso(self.now() - timedelta(days=7))
        return {"deliveries": [d for d in self.deliveries if d["created_at"] >= cutoff],
                "_meta": self._meta(request)}

    @route("GET", PREFIX + "/conversations")
    def list_conversations(self, request: Request) -> Any:
        self._need(request, "conversations")
        q = request.query
        now = self.now()
        try:
            limit = int(q.get("limit", 25))
        except ValueError:
            raise HttpError(400, "limit must be an integer") from None
        if not 1 <= limit <= 25:
            raise HttpError(400, "limit must not be greater than 25")
        after: tuple[str, str] | None = None
        frm, to = q.get("from"), q.get("to")
        if q.get("cursor"):
            try:
                state = orjson.loads(base64.urlsafe_b64decode(q["cursor"]))
            except Exception:
                raise HttpError(400, "Invalid cursor") from None
            if now.timestamp() > state["exp"]:
                raise HttpError(400, "Cursor expired")
            after, frm, to = (state["d"], state["i"]), state["f"], state["t"]
        lower = now - WINDOW
        if frm:
            try:
                frm_dt = datetime.fromisoformat(frm.replace("Z", "+00:00"))
            except ValueError:
                raise HttpError(400, "from must be an ISO 8601 date") from None
            if frm_dt < lower - timedelta(seconds=1):
                raise HttpError(400, "from must be within the last 30 days")
            lower = max(lower, frm_dt)
        upper = datetime.fromisoformat(to.replace("Z", "+00:00")) if to else None
        with self.lock:
            rows = [c for c in self.visible() if c.date >= lower and (upper is None or c.date <= upper)]
        if after is not None:
            rows = [c for c in rows if (_iso(c.date), c.id) < after]
        page, more = rows[:limit], len(rows) > limit
        cursor = None
        if more:
            last = page[-1]
            cursor = base64.urlsafe_b64encode(orjson.dumps(
                {"d": _iso(last.date), "i": last.id, "f": frm, "t": to,
                 "exp": (now + CURSOR_TTL).timestamp()})).decode()
        return {"conversations": [self.public(c) for c in page],
                "pagination": {"next_cursor": cursor, "has_more": more}, "_meta": self._meta(request)}

    @route("GET", PREFIX + r"/conversations/(?P<id>[^/]+)")
    def get_conversation(self, request: Request) -> Any:
        self._need(request, "conversations")
        with_transcript = request.query.get("include_transcript") == "true"
        with_insights = request.query.get("include_insights") == "true"
        if with_transcript:
            self._need(request, "transcripts")
        if with_insights:
            self._need(request, "insights")
        conv = self._touch(request, request.params["id"])
        body = {**self.public(conv), "summary": conv.summary}
        if with_transcript:
            body["transcript"] = conv.transcript if conv.status == "completed" else None
        if with_insights:
            body["insights"], body["topics"] = conv.insights, conv.topics
        return {"conversation": body, "_meta": self._meta(request)}

    @route("GET", PREFIX + r"/conversations/(?P<id>[^/]+)/transcript")
    def get_transcript(self, request: Request) -> Any:
        self._need(request, "transcripts")
        conv = self._touch(request, request.params["id"])
        if conv.status != "completed":
            raise HttpError(404, "Transcript not available")
        return {"conversation_id": conv.id, "transcript": conv.transcript, "_meta": self._meta(request)}

    @route("GET", PREFIX + r"/conversations/(?P<id>[^/]+)/insights")
    def get_insights(self, request: Request) -> Any:
        self._need(request, "insights")
        conv = self._touch(request, request.params["id"])
        return {"conversation_id": conv.id, "insights": conv.insights, "topics": conv.topics,
                "_meta": self._meta(request)}

    @route("GET", PREFIX + r"/conversations/(?P<id>[^/]+)/summary")
    def get_summary(self, request: Request) -> Any:
        self._need(request, "conversations")
        conv = self._touch(request, request.params["id"])
        return {"conversation_id": conv.id, "summary": conv.summary,
                "updated_at": _iso(conv.updated_at), "_meta": self._meta(request)}

    @route("GET", PREFIX + r"/conversations/(?P<id>[^/]+)/recording-url")
    def get_recording_url(self, request: Request) -> Any:
        self._need(request, "recordings")
        if not self.tokens[request.principal].include_recordings:
            raise HttpError(403, "Token does not have recording access (include_recordings)")
        conv = self._touch(request, request.params["id"])
        if not conv.has_recording:
            raise HttpError(404, "Recording not available")
        now = self.now()
        return {"conversation_id": conv.id,
                "recording_url": f"https://recordings.example/{conv.id}.mp4?sig={self._uuid()}",
                "expires_at": _iso(now + timedelta(hours=1)), "_meta": self._meta(request)}
