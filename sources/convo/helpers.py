"""Convo specifics: error classes, and reshaping answers into table rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .._common.errors import AuthError, BadRequestError, MeetingEltError, QuotaExhausted, ScopeError
from .._common.http import ApiResponse, error_message
from .._common.timeutil import parse_instant


class AiLimitExceeded(QuotaExhausted):
    """429 `ai_limit_exceeded`: the plan's monthly AI generations are spent. Stop generating."""

    hint = "no more keypoints/feedback are generated this month; reading continues"


class CalendarNotConnected(BadRequestError):
    """400 on /calendar/events: no Google Calendar is connected to the account."""

    hint = "connect Google Calendar in the Convo dashboard to load calendar_events"


def error_code(answer: ApiResponse) -> str | None:
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    return None


def classify_error(answer: ApiResponse) -> MeetingEltError | None:
    """Tells the AI allowance from the hourly limit, a plan without API access from a
    plan without webhooks, and a missing calendar from a bad request."""
    code, message = error_code(answer), error_message(answer.body)
    if answer.status == 429 and code == "ai_limit_exceeded":
        return AiLimitExceeded(f"monthly AI generation limit reached: {message}", status=429, url=answer.url)
    if answer.status == 403:
        if "/webhooks" in answer.url:
            return ScopeError(f"forbidden: {message}", scope="webhooks (Professional plan)",
                              status=403, url=answer.url)
        return AuthError(f"the key's plan has no API access: {message}", status=403, url=answer.url,
                         hint="API access needs the Starter plan or above")
    if answer.status == 400 and "/calendar/" in answer.url and "calendar" in message.lower():
        return CalendarNotConnected(f"no calendar: {message}", status=400, url=answer.url)
    return None


def transcript_rows(conversation_id: str, start_time: str | None,
                    segments: Any) -> tuple[list[dict[str, Any]], int]:
    """Canonical segment rows, and how many segments had no usable `timestamp`.

    Convo gives each segment the instant it starts; `start_seconds` is that instant less
    the conversation's `startTime`. The raw `timestamp` is kept beside it.
    """
    origin = parse_instant(start_time) if start_time else None
    rows, bad = [], 0
    for i, seg in enumerate(segments if isinstance(segments, list) else []):
        seg = seg if isinstance(seg, dict) else {"text": str(seg)}
        at = _instant(seg.get("timestamp"))
        if at is None or origin is None:
            bad += 1
        rows.append({"meeting_id": conversation_id, "segment_index": i, "speaker": seg.get("speaker"),
                     "start_seconds": (at - origin).total_seconds() if at and origin else None,
                     "end_seconds": None, "text": seg.get("text"), "timestamp": seg.get("timestamp")})
    return rows, bad


def _instant(value: Any) -> datetime | None:
    try:
        return parse_instant(value) if isinstance(value, str) else None
    except Exception:
        return None


def profile_row(profile: dict) -> dict:
    """The profile without the per-request counters (`remaining`, `resetAt`), which change
    with every call: they go to the run report, not the table."""
    row = dict(profile)
    usage = row.get("apiUsage")
    if isinstance(usage, dict) and isinstance(usage.get("requests"), dict):
        requests = {k: v for k, v in usage["requests"].items() if k not in ("remaining", "resetAt")}
        row["apiUsage"] = {**usage, "requests": requests}
    return row


def event_start(event: dict) -> datetime | None:
    """An event's start, whether a plain instant or Google's `{"dateTime"|"date": …}`."""
    start = event.get("start")
    if isinstance(start, dict):
        start = start.get("dateTime") or start.get("date")
    return _instant(start)


def without_secrets(row: dict) -> dict:
    """Drops any secret-looking field (webhook signing secrets must never reach a table)."""
    return {k: v for k, v in row.items() if "secret" not in k.lower()}
