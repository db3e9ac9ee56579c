"""Convo specifics: error classes, answers the source reads itself, and reshaping answers
into table rows.

Every reader here is tolerant (`_common.records`): a value of the wrong type never raises,
and a record whose data had to be repaired, or could not be read where the source decides
something from it, is named in the run's report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._common.errors import AuthError, MeetingEltError, ScopeError
from .._common.http import ApiResponse, error_message
from .._common.records import (
    Problems,
    describe,
    excerpt,
    is_blank,
    read_dict,
    read_float,
    read_instant,
    read_int,
    read_text,
    report_problems,
    unreadable,
)
from .._common.report import RunReport
from .._common.transcripts import TABLE as SEGMENTS
from .settings import PROFILE_TABLE

NOT_CONNECTED = ("no Google Calendar is connected to this Convo account (connect one in the Convo "
                 "dashboard to load it)")


def error_code(answer: ApiResponse) -> str | None:
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    return None


def classify_error(answer: ApiResponse) -> MeetingEltError | None:
    """Tells a plan without API access (Free) from a plan without webhooks."""
    message = error_message(answer.body)
    if answer.status == 403:
        if "/webhooks" in answer.url:
            return ScopeError(f"forbidden: {message}", scope="webhooks (Professional plan)",
                              status=403, url=answer.url)
        return AuthError(f"the key's plan has no API access: {message}", status=403, url=answer.url,
                         hint="API access needs the Starter plan or above")
    return None


# ---------------------------------------------------------------------- answers read here
# (`ApiClient.request(accept=...)`): each means something the source decides, not an error


def not_made_yet(answer: ApiResponse) -> bool:
    """404 on GET keypoints/feedback: not generated yet."""
    return answer.status == 404


def generation_refused(answer: ApiResponse) -> bool:
    """A POST that made nothing: 400 (e.g. too short for feedback), 404 (the conversation is
    gone), or 429 `ai_limit_exceeded` (the plan's monthly AI generations are spent; unlike
    the hourly 429, it stops only the generating)."""
    return answer.status in (400, 404) or (answer.status == 429 and error_code(answer) == "ai_limit_exceeded")


def calendar_not_connected(answer: ApiResponse) -> bool:
    """400 on /calendar/events: no Google Calendar is connected to the account."""
    return answer.status == 400 and "calendar" in error_message(answer.body).lower()


def probe_refused(answer: ApiResponse) -> bool:
    """What `check` lists as a reason rather than raising: a 4xx other than a bad key or a
    rate limit."""
    return 400 <= answer.status < 500 and answer.status not in (401, 429)


# ---------------------------------------------------------------------- list items


@dataclass
class Listed:
    """One conversation of the list, read tolerantly.

    `row` is what loads (the item as sent); `start` its `startTime` as UTC text with
    microseconds (sortable), None when unreadable; `ended` whether it has an `endTime`;
    `count` its `segmentCount` read as a number (a count sent as text is read)."""

    id: str
    row: dict
    start: str | None
    ended: bool
    count: int | None
    problems: Problems


def read_conversations(items: list, report: RunReport) -> list[Listed]:
    """Reads one list page; items without an id cannot be loaded: named and left out.

    `startTime`, `endTime` and `segmentCount` decide what is fetched, so a value that had to
    be repaired or could not be read is noted (and named when the row loads)."""
    out = []
    for item in items:
        if not isinstance(item, dict) or is_blank(item.get("id")):
            report.bad_record("conversations", excerpt(item), "a conversation without an id: not loaded",
                              loaded=False)
            continue
        problems = Problems()
        at = problems.check("startTime", item.get("startTime"), read_instant(item.get("startTime")))
        if at is None:
            problems.notes.append("no readable startTime: its transcript cannot be placed in time and is "
                                  "not fetched until it has one")
        raw_end = item.get("endTime")
        problems.check("endTime", raw_end, read_instant(raw_end))
        count = problems.check("segmentCount", item.get("segmentCount"), read_int(item.get("segmentCount")),
                               exact=True)
        out.append(Listed(str(item["id"]), item, utc_text(at) if at else None, not is_blank(raw_end),
                          count, problems))
    return out


def utc_text(at: datetime) -> str:
    """An instant as UTC text with microseconds: sortable as text (newest first)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------- transcripts


def transcript_rows(conversation_id: str, start_time: str | None, segments: Any,
                    report: RunReport) -> list[dict[str, Any]]:
    """Canonical segment rows; a segment without a readable `timestamp` is loaded with
    `start_seconds` null and named (`<conversation id>#<segment index>`).

    Convo gives each segment the instant it starts; `start_seconds` is that instant less
    the conversation's `startTime`. The raw `timestamp` is kept beside it.
    """
    origin = read_instant(start_time)
    rows = []
    for i, seg in enumerate(segments if isinstance(segments, list) else []):
        if not isinstance(seg, dict):
            report.bad_record(SEGMENTS, f"{conversation_id}#{i}",
                              f"segment is {describe(seg)}, not an object: kept as its text", loaded=True)
            seg = {"text": read_text(seg)}
        raw = seg.get("timestamp")
        at = read_instant(raw)
        if at is None:
            why = "no timestamp" if is_blank(raw) else f"timestamp={describe(raw)} unreadable"
            report.bad_record(SEGMENTS, f"{conversation_id}#{i}", f"{why}: start_seconds null", loaded=True)
        rows.append({**seg, "meeting_id": conversation_id, "segment_index": i,
                     "speaker": seg.get("speaker"),
                     "start_seconds": (at - origin).total_seconds() if at and origin else None,
                     "end_seconds": None, "text": seg.get("text"), "timestamp": raw})
    return rows


# ---------------------------------------------------------------------- profile


def tier_of(profile: Any) -> str | None:
    """The plan (`starter`, `professional`, `enterprise`) from `data.subscription.tier`."""
    data = read_dict(profile) or {}
    tier = read_text((read_dict(data.get("subscription")) or {}).get("tier"))
    return (tier.strip().lower() or None) if tier else None


def ai_generations(profile: Any) -> dict[str, Any]:
    data = read_dict(profile) or {}
    return read_dict((read_dict(data.get("apiUsage")) or {}).get("aiGenerations")) or {}


def profile_row(profile: Any, report: RunReport) -> dict | None:
    """One `user_profile` row, keyed by `email` (the profile has no id): the `profile`
    fields at the top, `subscription` and `apiUsage` nested (dlt makes them
    `subscription__tier`, `api_usage__ai_generations__used`, …), any other field as sent.
    None, and the record named, when there is no email to key it by."""
    data = read_dict(profile) or {}
    problems = Problems()
    parts = {}
    for name in ("profile", "subscription", "apiUsage"):
        raw = data.get(name)
        parts[name] = problems.check(name, raw, read_dict(raw), exact=True) or {}
    usage = dict(parts["apiUsage"])
    if "aiGenerations" in usage:
        raw = usage["aiGenerations"]
        usage["aiGenerations"] = problems.check("apiUsage.aiGenerations", raw, read_dict(raw), exact=True) or raw
    row = {k: v for k, v in data.items() if k not in parts}
    row.update(parts["profile"])
    row["subscription"], row["apiUsage"] = parts["subscription"], usage
    email = read_text(row.get("email"))
    if is_blank(email):
        report.bad_record(PROFILE_TABLE, f"profile of {describe(parts['profile'].get('name'))}",
                          f"no email to key the row by ({problems.text() or 'profile.email missing'})",
                          loaded=False)
        return None
    report_problems(report, PROFILE_TABLE, email, problems)
    return row


# ---------------------------------------------------------------------- keypoints, feedback


def ai_data(body: Any) -> dict | None:
    """The `data` object of a keypoints/feedback answer; None when there is none."""
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None


def keypoints_row(conversation_id: str, data: dict, report: RunReport) -> dict:
    """A `keypoints` row: `conversation_id` (the answer's `id` is the conversation's), the
    answer's fields as sent (`keypoints` nested: `keypoints__keypoints__sections`, …), each
    action item's `confidence` as a number."""
    problems = Problems()
    row = {"conversation_id": conversation_id,
           **{k: v for k, v in data.items() if k not in ("id", "cached")}}
    raw = row.get("keypoints")
    inner = problems.check("keypoints", raw, read_dict(raw), exact=True)
    if inner is not None:
        items = inner.get("actionItems")
        if isinstance(items, list):
            inner = {**inner, "actionItems": [
                {**item, "confidence": _number(f"actionItems[{i}].confidence", item.get("confidence"), problems)}
                if isinstance(item, dict) and "confidence" in item else item
                for i, item in enumerate(items)]}
        row["keypoints"] = inner
    report_problems(report, "keypoints", conversation_id, problems)
    return row


def feedback_row(conversation_id: str, data: dict, report: RunReport) -> dict:
    """A `feedback` row: `conversation_id`, the fields of the answer's `feedback` object
    brought up one level (`overall_score`, `top_priority__*`, `category_scores__*`,
    `talk_listen_ratio`; `strengths`, `growth_areas`, `action_plan` as child tables), then
    the answer's own fields (`userSpeakerName`, `createdAt`, …). Every score is a double:
    whole scores come without a fraction (`9`), and a column must not change type."""
    problems = Problems()
    raw = data.get("feedback")
    inner = problems.check("feedback", raw, read_dict(raw), exact=True)
    row: dict[str, Any] = {"conversation_id": conversation_id}
    if inner is not None:
        row.update(inner)
    elif raw is not None:
        row["feedback"] = raw  # unreadable: kept as sent
    row.update({k: v for k, v in data.items() if k not in ("id", "cached", "feedback")})
    for name in ("overallScore", "talkListenRatio"):
        if name in row:
            row[name] = _number(name, row[name], problems)
    if "categoryScores" in row:
        raw_scores = row["categoryScores"]
        scores = problems.check("categoryScores", raw_scores, read_dict(raw_scores), exact=True)
        if scores is not None:
            row["categoryScores"] = {k: _number(f"categoryScores.{k}", v, problems) for k, v in scores.items()}
    report_problems(report, "feedback", conversation_id, problems)
    return row


def _number(name: str, value: Any, problems: Problems) -> Any:
    """A score or ratio as a float; a number sent as text is read (and noted); an
    unreadable value is kept as sent (dlt puts it in a variant column) and noted."""
    number = read_float(value)
    if unreadable(value, number):
        problems.note(name, value)
        return value
    if isinstance(value, str):
        problems.note(name, value, number)
    return number


# ---------------------------------------------------------------------- calendar


def event_start(event: dict) -> tuple[datetime | None, str | None]:
    """An event's start instant from `start.dateTime` (or an all-day event's `start.date`,
    taken as midnight UTC), and what was wrong with it, if anything: a missing or
    unreadable value, or `start` sent as a plain string instead of Google's object."""
    raw = event.get("start")
    if isinstance(raw, str):
        at = read_instant(raw)
        return at, ("start sent as text, not an object" + ("" if at else f": {describe(raw)} unreadable"))
    start = read_dict(raw)
    if start is None:
        return None, f"start={describe(raw)} is not an object"
    value = start.get("dateTime") if not is_blank(start.get("dateTime")) else start.get("date")
    at = read_instant(value)
    if at is None:
        shown = start.get("dateTime", start.get("date"))
        return None, ("start has no dateTime or date" if is_blank(shown)
                      else f"start.dateTime={describe(shown)} unreadable")
    return at, None


def without_secrets(row: dict) -> dict:
    """Drops any secret-looking field (webhook signing secrets must never reach a table)."""
    return {k: v for k, v in row.items() if "secret" not in k.lower()}
