"""Meetric partner specifics: error classes, and reshaping answers into table rows."""

from __future__ import annotations

import re
from typing import Any

from .._common.errors import MeetingEltError, QuotaExhausted, ScopeError
from .._common.http import ApiResponse, error_message
from .._common.timeutil import parse_instant

_SCOPE_MESSAGE = re.compile(r"does not have the '([a-z_]+)' scope")


def classify_error(answer: ApiResponse) -> MeetingEltError | None:
    """Names the missing scope of a 403 and tells the daily quota from the per-minute limit."""
    message = error_message(answer.body)
    if answer.status == 403:
        found = _SCOPE_MESSAGE.search(message)
        scope = found.group(1) if found else ("recordings" if "recording" in message.lower() else None)
        return ScopeError(f"forbidden: {message}", scope=scope, status=403, url=answer.url)
    if answer.status == 429 and "quota" in message.lower():
        return QuotaExhausted(f"daily conversation quota spent: {message}", status=429, url=answer.url)
    return None


def transcript_rows(conversation_id: str, conversation_date: str | None,
                    transcript: Any) -> list[dict[str, Any]] | None:
    """Canonical segments from either transcript shape; None when the shape is unknown.

    `sentences` carry seconds from the start; chat `messages` carry instants, turned into
    seconds from the conversation's `date`.
    """
    if transcript is None:
        return []
    if not isinstance(transcript, dict):
        return None
    if isinstance(transcript.get("sentences"), list):
        return [{"meeting_id": conversation_id, "segment_index": i,
                 "speaker": s.get("speaker_name"), "start_seconds": _float(s.get("start")),
                 "end_seconds": _float(s.get("end")), "text": s.get("text")}
                for i, s in enumerate(transcript["sentences"])]
    if isinstance(transcript.get("messages"), list):
        origin = parse_instant(conversation_date)
        rows = []
        for i, m in enumerate(transcript["messages"]):
            sent = parse_instant(m.get("sent_at"))
            rows.append({"meeting_id": conversation_id, "segment_index": i, "speaker": m.get("sender"),
                         "start_seconds": (sent - origin).total_seconds() if sent and origin else None,
                         "end_seconds": None, "text": m.get("content"), "sent_at": m.get("sent_at")})
        return rows
    if not transcript:
        return []
    return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
