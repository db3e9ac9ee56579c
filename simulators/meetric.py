"""Simulator of the Meetric workspace API (observed-responses.md, section 1).

Several accounts on one host, told apart by `X-Account-ID`; keys that are read-only or
read-write and belong to accounts; offset paging; per-key rate limits with `X-RateLimit-*`
headers on every answer; conversations that are processed (summary, sentiment, insights,
action items) after their date; action items whose status changes; trends and summaries
computed from the live data.
"""

from __future__ import annotations

import bisect
import math
import time
from datetime import date, timedelta
from typing import Any

from .base import HttpError, Request, Simulator, route
from .meetric_data import ITEM_STATUSES, Account, Key, WorkspaceData, day_end, day_start, render

PREFIX = "/api/v1"
STATUSES = ("processing", "processed", "failed")
ERROR_TYPES = {400: "validation_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error", 501: "api_error"}


class MeetricSimulator(WorkspaceData, Simulator):
    """The Meetric workspace API for `accounts` accounts of `conversations` conversations each."""

    name = "meetric"

    def __init__(self, *, accounts: int = 1, conversations: int = 40, users: int = 10,
                 span_days: float = 30, processing_share: float = 0.02, seed: int = 0,
                 rate_limit: int | None = 100, rate_window_seconds: float = 60.0, **kw: Any) -> None:
        super().__init__(seed=seed, **kw)
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.processing_share = processing_share
        self.keys: dict[str, Key] = {}
        self.accounts: dict[str, Account] = {}
        self._windows: dict[str, list[float]] = {}  # key -> [window start, reset at, used]
        for _ in range(accounts):
            account = self.add_account(users=users)
            now = self.now()
            for i in range(conversations):
                when = now - timedelta(days=span_days * (i + 0.5) / max(1, conversations))
                self.add_conversation(account.id, date=when, status=self._random_status(when))
        self.account_ids = list(self.accounts)
    # ------------------------------------------------------------------ protocol
    def source_config(self) -> dict[str, Any]:
        base = self.base_url + PREFIX
        if len(self.account_ids) == 1:
            account = self.accounts[self.account_ids[0]]
            return {"base_url": base, "account_id": account.id, "api_key": account.key}
        return {"base_url": base, "accounts": [{"account_id": a.id, "api_key": a.key}
                                               for a in self.accounts.values()]}

    def error_body(self, error: HttpError) -> Any:
        body = {"code": error.code or "api_error", "message": error.message,
                "type": ERROR_TYPES.get(error.status, "api_error"),
                "docs_url": f"{self.base_url}/documentation/api#errors"}
        return {"error": {**body, **error.extra}}

    def authenticate(self, request: Request) -> Any:
        header = request.headers.get("Authorization", "")
        key = header[7:] if header.startswith("Bearer ") else ""
        if key not in self.keys:
            raise HttpError(401, "API key is invalid or expired", "authentication_failed")
        account_id = request.headers.get("X-Account-ID", "")
        if account_id not in self.keys[key].accounts:
            raise HttpError(401, f"API key is not valid for account '{account_id}'" if account_id
                            else "the X-Account-ID header is required", "authentication_failed")
        if any(request.path.startswith(PREFIX + prefix) for prefix in self.keys[key].denied):
            raise HttpError(403, "API key lacks permission for this resource", "insufficient_permissions")
        return key, self.accounts[account_id]

    def before_handle(self, request: Request) -> dict[str, str]:
        if not self.rate_limit:
            return {}
        key = request.principal[0]
        now = time.time()  # rate windows run on real time: tests move the data clock, not this
        with self.lock:
            window = self._windows.get(key)
            if window is None or now >= window[1]:
                window = self._windows[key] = [now, float(math.ceil(now + self.rate_window_seconds)), 0]
            window[2] += 1
            remaining = self.rate_limit - window[2]
            headers = {"X-RateLimit-Limit": str(self.rate_limit),
                       "X-RateLimit-Remaining": str(max(0, remaining)),
                       "X-RateLimit-Reset": str(int(window[1]))}
        if remaining < 0:
            raise HttpError(429, "Too many requests in time window", "rate_limit_exceeded",
                            headers={**headers, "Retry-After": str(max(1, math.ceil(window[1] - now)))})
        return headers

    # ------------------------------------------------------------------ routes
    def _page(self, request: Request, rows: list[dict]) -> dict:
        limit, offset = _int(request, "limit", 20, 1, 100), _int(request, "offset", 0, 0, None)
        page = rows[offset:offset + limit]
        return {"data": [render(r) for r in page],
                "pagination": {"total": len(rows), "limit": limit, "offset": offset,
                               "has_more": offset + len(page) < len(rows)}}

    @route("GET", PREFIX + "/conversations")
    def list_conversations(self, request: Request) -> Any:
        account: Account = request.principal[1]
        q = request.query
        start, end = _date(request, "start_date"), _date(request, "end_date")
        _choice(request, "status", STATUSES)
        with self.lock:
            if start or end:
                rows = self._in_days(account, start or date.min, end or date.max)
            else:
                rows = self._sorted(account, "conversations", "date")[0]
            rows = [r for r in rows if (not q.get("status") or r["status"] == q["status"])
                    and (not q.get("department") or r["department"] == q["department"])]
            return self._page(request, rows)

    @route("GET", PREFIX + r"/conversations/(?P<id>[^/]+)")
    def get_conversation(self, request: Request) -> Any:
        account: Account = request.principal[1]
        conv = account.conversations.get(request.params["id"])
        if conv is None:
            raise HttpError(404, "Conversation not found", "resource_not_found")
        cid = conv["id"]
        return {"data": {**render(conv),
                         "insights_count": sum(i["conversation_id"] == cid for i in account.insights.values()),
                         "action_items_count": sum(a["conversation_id"] == cid
                                                   for a in account.action_items.values())}}

    @route("GET", PREFIX + "/insights")
    def list_insights(self, request: Request) -> Any:
        account: Account = request.principal[1]
        q = request.query
        start, end = _date(request, "start_date"), _date(request, "end_date")
        _choice(request, "type", ("action_item", "topic", "decision"))
        with self.lock:
            rows, keys = self._sorted(account, "insights", "created_at")
            if start or end:
                lo = bisect.bisect_left(keys, -day_end(end or date.max).timestamp())
                hi = bisect.bisect_right(keys, -day_start(start or date.min).timestamp())
                rows = rows[lo:hi]
            rows = [r for r in rows if (not q.get("type") or r["type"] == q["type"])
                    and (not q.get("conversation_id") or r["conversation_id"] == q["conversation_id"])]
            return self._page(request, rows)

    @route("GET", PREFIX + "/insights/trends")
    def get_trends(self, request: Request) -> Any:
        start, end = _date(request, "start_date", required=True), _date(request, "end_date", required=True)
        interval = _choice(request, "interval", ("day", "week", "month")) or "week"
        with self.lock:
            return {"data": self.trends(request.principal[1].id, start, end, interval)}

    @route("GET", PREFIX + "/insights/summary")
    def get_summary(self, request: Request) -> Any:
        today = self.now().date()
        start = _date(request, "start_date") or today - timedelta(days=30)
        end = _date(request, "end_date") or today
        with self.lock:
            return {"data": self.summary(request.principal[1].id, start, end)}

    @route("GET", PREFIX + r"/insights/(?P<id>(?!trends$|summary$)[^/]+)")
    def get_insight(self, request: Request) -> Any:
        return {"data": self._get(request, "insights", "Insight")}

    @route("GET", PREFIX + "/action-items")
    def list_action_items(self, request: Request) -> Any:
        account: Account = request.principal[1]
        q = request.query
        _choice(request, "status", ITEM_STATUSES)
        with self.lock:
            rows = self._sorted(account, "action_items", "updated_at")[0]
            if q.get("status") or q.get("assigned_to") or q.get("conversation_id"):
                rows = [r for r in rows if all(not q.get(f) or r[f] == q[f]
                                               for f in ("status", "assigned_to", "conversation_id"))]
            return self._page(request, rows)

    @route("GET", PREFIX + r"/action-items/(?P<id>[^/]+)")
    def get_action_item(self, request: Request) -> Any:
        return {"data": self._get(request, "action_items", "Action item")}

    def _get(self, request: Request, kind: str, what: str) -> dict:
        record = getattr(request.principal[1], kind).get(request.params["id"])
        if record is None:
            raise HttpError(404, f"{what} not found", "resource_not_found")
        return render(record)

    @route("GET", PREFIX + "/users")
    def list_users(self, request: Request) -> Any:
        account: Account = request.principal[1]
        with self.lock:
            return self._page(request, sorted(account.users.values(), key=lambda u: u["id"]))

    @route("GET", PREFIX + r"/teams/(?P<id>[^/]+)/managers")
    def list_team_managers(self, request: Request) -> Any:
        return self._managers(request, "team_managers", "Team")

    @route("GET", PREFIX + r"/departments/(?P<id>[^/]+)/managers")
    def list_department_managers(self, request: Request) -> Any:
        return self._managers(request, "department_managers", "Department")

    def _managers(self, request: Request, kind: str, what: str) -> Any:
        managers = getattr(request.principal[1], kind).get(request.params["id"])
        if managers is None:
            raise HttpError(404, f"{what} not found", "resource_not_found")
        with self.lock:
            return {"data": [render(m) for m in managers.values()]}

    def _write(self, request: Request) -> Any:
        if not self.keys[request.principal[0]].write:
            raise HttpError(403, "This API key is read-only", "insufficient_permissions")
        raise HttpError(501, "writes are not simulated", "not_implemented")

    @route("POST", PREFIX + "/.*")
    def post_any(self, request: Request) -> Any:
        return self._write(request)

    @route("PATCH", PREFIX + "/.*")
    def patch_any(self, request: Request) -> Any:
        return self._write(request)

    @route("PUT", PREFIX + "/.*")
    def put_any(self, request: Request) -> Any:
        return self._write(request)

    @route("DELETE", PREFIX + "/.*")
    def delete_any(self, request: Request) -> Any:
        return self._write(request)

# ---------------------------------------------------------------------- query helpers
def _int(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise HttpError(400, f"'{name}' must be an integer {bounds}", "invalid_parameter",
                        extra={"param": name})
    return value


def _date(request: Request, name: str, *, required: bool = False) -> date | None:
    raw = request.query.get(name)
    if not raw:
        if required:
            raise HttpError(400, f"'{name}' is required", "invalid_parameter", extra={"param": name})
        return None
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else _fail()
    except ValueError:
        raise HttpError(400, f"'{name}' must be a date (YYYY-MM-DD)", "invalid_parameter",
                        extra={"param": name}) from None


def _fail() -> date:
    raise ValueError


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw and raw not in allowed:
        raise HttpError(400, f"'{name}' must be one of {', '.join(allowed)}", "invalid_parameter",
                        extra={"param": name})
    return raw


__all__ = ["MeetricSimulator"]
