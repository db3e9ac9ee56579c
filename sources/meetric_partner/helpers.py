"""Meetric partner specifics: error classes, and reshaping answers into table rows.

Every reader here is tolerant (`_common.records`): a malformed field never raises; the
record loads with its raw value kept, or repaired, and the run names it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._common.errors import MeetingEltError, QuotaExhausted, ScopeError
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
    read_list,
    read_text,
    report_problems,
    unreadable,
)
from .._common.transcripts import TABLE as SEGMENTS
from .settings import STATUSES

if TYPE_CHECKING:
    from .._common.report import RunReport

_SCOPE_MESSAGE = re.compile(r"does not have the '([a-z_]+)' scope")


def classify_error(answer: ApiResponse, on_quota: Callable[[], None] | None = None) -> MeetingEltError | None:
    """Names the missing scope of a 403 and tells the daily quota from the per-minute limit
    (`on_quota` is told when the API answers that the daily quota is spent)."""
    message = error_message(answer.body)
    if answer.status == 403:
        found = _SCOPE_MESSAGE.search(message)
        scope = found.group(1) if found else ("recordings" if "recording" in message.lower() else None)
        return ScopeError(f"forbidden: {message}", scope=scope, status=403, url=answer.url)
    if answer.status == 429 and "quota" in message.lower():
        if on_quota is not None:
            on_quota()
        return QuotaExhausted(f"daily conversation quota spent: {message}", status=429, url=answer.url)
    return None


# ---------------------------------------------------------------------- list items
@dataclass
class Listed:
    """One conversation of the list, read tolerantly.

    `row` is what loads (the item as sent, objects sent as JSON text decoded); `date` is its
    readable `date` or None; `book_date` is the instant the bookkeeping files it under: its
    date, or for an unreadable date a lower bound of it (see `read_list_page`).
    """

    id: str
    row: dict
    date: datetime | None
    book_date: datetime | None
    updated: Any
    status: str | None
    problems: Problems


def read_list_page(items: list, lowest_possible: datetime, report: RunReport) -> list[Listed]:
    """Reads one list page; items that cannot be loaded at all (no id) are named and left out.

    The list is in `date` order, newest first, and holds only conversations dated at or
    after the `from` it was asked with (`lowest_possible`). So a conversation whose `date`
    cannot be read is dated no earlier than the next readable date below it on the page, or
    than `from`: that lower bound files it (the next run lists back to it while it is owed
    details, and a sweep marks it deleted only if that bound is well inside the window).
    """
    out: list[Listed] = []
    for raw in items:
        listed = read_item(raw, report)
        if listed is not None:
            out.append(listed)
    bound = lowest_possible  # the nearest readable date below, walking up from the page's end
    for listed in reversed(out):
        if listed.date is not None:
            bound = listed.date
        listed.book_date = bound if listed.date is None else listed.date
    return out


def read_item(raw: Any, report: RunReport) -> Listed | None:
    """A list item (also the list fields of a detail answer), or None when it has no id."""
    if not isinstance(raw, dict):
        report.bad_record("conversations", excerpt(raw), "not an object: not loaded", loaded=False)
        return None
    cid = read_text(raw.get("id"))
    if is_blank(cid):
        report.bad_record("conversations", excerpt(raw), "no id: not loaded", loaded=False)
        return None
    problems = Problems()
    row = dict(raw)
    date = read_instant(raw.get("date"))
    if date is None:
        problems.notes.append(f"date={describe(raw.get('date'))} unreadable: loaded as sent, its details "
                              "fetched, and it never moves the listing's cursor")
    updated = raw.get("updated_at")
    if read_instant(updated) is None:
        problems.notes.append(f"updated_at={describe(updated)} unreadable: loaded as sent, the raw value "
                              "tells its versions apart")
    status = read_text(raw.get("status"))
    if status not in STATUSES:
        problems.notes.append(f"status={describe(raw.get('status'))} unknown: its details are not fetched")
        status = None
    problems.check("duration", raw.get("duration"), read_int(raw.get("duration")), exact=True)
    for key in ("department", "user"):
        value = raw.get(key)
        parsed = problems.check(key, value, read_dict(value), exact=True)
        if parsed is not None:
            row[key] = parsed  # an object sent as its JSON text: loaded as the object
    value = raw.get("participants")
    parsed = problems.check("participants", value, read_list(value), exact=True)
    if parsed is not None:
        row["participants"] = parsed
    return Listed(cid, row, date, date, updated, status, problems)


# ---------------------------------------------------------------------- transcripts
def transcript_rows(conversation_id: str, origin: datetime | None, transcript: Any,
                    report: RunReport) -> list[dict[str, Any]] | None:
    """Canonical segments from either transcript shape; None when the shape is unknown.

    `sentences` carry seconds from the start; chat `messages` carry instants, turned into
    seconds from the conversation's `date` (`origin`). Values are passed on as sent, so
    `segments_table` converts and names wrong-typed ones; a segment with null text or no
    start time loads with nulls and is named here. A transcript sent as JSON text is read.
    """
    if transcript is None:
        return []
    if isinstance(transcript, str):
        decoded = read_dict(transcript)
        if decoded is None:
            return None if not is_blank(transcript) else []
        report.bad_record(SEGMENTS, conversation_id, "transcript sent as JSON text: read as the object",
                          loaded=True)
        transcript = decoded
    if not isinstance(transcript, dict):
        return None
    if isinstance(transcript.get("sentences"), list):
        return [row for i, s in enumerate(transcript["sentences"])
                if (row := _sentence(conversation_id, i, s, report)) is not None]
    if isinstance(transcript.get("messages"), list):
        if origin is None and transcript["messages"]:
            report.bad_record(SEGMENTS, conversation_id, "the conversation's date is unreadable: chat "
                              "messages load with start_seconds null", loaded=True)
        return [row for i, m in enumerate(transcript["messages"])
                if (row := _message(conversation_id, i, m, origin, report)) is not None]
    if not transcript:
        return []
    return None


def _segment_id(conversation_id: str, index: int) -> str:
    return f"{conversation_id}#{index}"


def _sentence(cid: str, i: int, s: Any, report: RunReport) -> dict | None:
    s = read_dict(s)
    if s is None:
        report.bad_record(SEGMENTS, _segment_id(cid, i), "sentence is not an object: not loaded", loaded=False)
        return None
    _name_missing(cid, i, s.get("text"), "start" in s and s.get("start") is not None, report, "start")
    return {"meeting_id": cid, "segment_index": i, "speaker": s.get("speaker_name"),
            "start_seconds": s.get("start"), "end_seconds": s.get("end"), "text": s.get("text")}


def _message(cid: str, i: int, m: Any, origin: datetime | None, report: RunReport) -> dict | None:
    m = read_dict(m)
    if m is None:
        report.bad_record(SEGMENTS, _segment_id(cid, i), "message is not an object: not loaded", loaded=False)
        return None
    raw_sent = m.get("sent_at")
    sent = read_instant(raw_sent)
    if unreadable(raw_sent, sent):
        report.bad_record(SEGMENTS, _segment_id(cid, i), f"sent_at={describe(raw_sent)} unreadable: "
                          "start_seconds null, sent_at kept as sent", loaded=True)
    _name_missing(cid, i, m.get("content"), not is_blank(raw_sent), report, "sent_at")
    return {"meeting_id": cid, "segment_index": i, "speaker": m.get("sender"),
            "start_seconds": (sent - origin).total_seconds() if sent and origin else None,
            "end_seconds": None, "text": m.get("content"), "sent_at": raw_sent}


def _name_missing(cid: str, i: int, text: Any, has_start: bool, report: RunReport, start_field: str) -> None:
    if text is None:
        report.bad_record(SEGMENTS, _segment_id(cid, i), "text is null: loaded with text null", loaded=True)
    if not has_start:
        report.bad_record(SEGMENTS, _segment_id(cid, i), f"no {start_field}: loaded with start_seconds null",
                          loaded=True)


# ---------------------------------------------------------------------- insights, topics
def insight_rows(cid: str, raw: Any, report: RunReport) -> list[dict]:
    """Insight rows of one conversation; an insight without an id is named and left out."""
    out = []
    for i, insight in enumerate(_items(cid, "insights", raw, report)):
        parsed = read_dict(insight)
        iid = read_text(parsed.get("id")) if parsed else None
        if parsed is None or is_blank(iid):
            report.bad_record("insights", f"{cid}/insights[{i}]", f"no id: not loaded ({excerpt(insight, 100)})",
                              loaded=False)
            continue
        problems = Problems()
        if parsed is not insight:
            problems.notes.append("sent as JSON text: read as the object")
        row = {**parsed, "id": iid, "conversation_id": cid}
        start = problems.check("start", parsed.get("start"), read_float(parsed.get("start")), exact=True)
        if start is not None:
            row["start"] = start
        report_problems(report, "insights", iid, problems)
        out.append(row)
    return out


def topic_rows(cid: str, raw: Any, report: RunReport) -> list[dict]:
    """Topic rows of one conversation; a topic without a name is named and left out."""
    out = []
    for i, topic in enumerate(_items(cid, "conversation_topics", raw, report)):
        parsed = read_dict(topic)
        name = read_text(parsed.get("name")) if parsed else None
        if parsed is None or is_blank(name):
            report.bad_record("conversation_topics", f"{cid}/topics[{i}]",
                              f"no name: not loaded ({excerpt(topic, 100)})", loaded=False)
            continue
        problems = Problems()
        row = {**parsed, "name": name, "conversation_id": cid}
        for key, reader in (("mentions", read_int), ("share", read_float)):
            value = problems.check(key, parsed.get(key), reader(parsed.get(key)), exact=True)
            if value is not None:
                row[key] = value
        report_problems(report, "conversation_topics", f"{cid}/{name}", problems)
        out.append(row)
    return out


def _items(cid: str, table: str, raw: Any, report: RunReport) -> list:
    if raw is None:
        return []
    items = read_list(raw)
    if items is None:
        report.bad_record(table, cid, f"not a list ({describe(raw)}): not loaded", loaded=False)
        return []
    if items is not raw:
        report.bad_record(table, cid, "list sent as JSON text: read as the list", loaded=True)
    return items
