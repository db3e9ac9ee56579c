"""Meemo specifics: error classes, stage signals of every build, reshaping answers into rows.

Every reader here is tolerant (`_common.records`): a malformed field never raises; the
record loads with its raw value kept, or repaired, and the run names it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson

from .._common.errors import AuthError, MeetingEltError, ScopeError
from .._common.http import ApiResponse, error_message
from .._common.ledger import row_hash
from .._common.paginators import NextUrlPaginator, PageRequest
from .._common.records import (
    Problems,
    is_blank,
    read_dict,
    read_float,
    read_instant,
    read_int,
    read_list,
    read_text,
)
from .._common.report import RunReport
from .._common.transcripts import TABLE as SEGMENTS
from .settings import (
    COLUMN_TYPES,
    FINAL_EVENT_STATUSES,
    FINISHED_STATUS,
    RECORDING_VOLATILE,
    SECRET_FIELDS,
    STAGE_DONE,
    STAGE_WAITING,
)

STAGES = ("recording", "transcription", "summarization")
LEGACY_SECTION_TEXT_KEYS = ("content", "text", "summary", "body")
LEGACY_SECTION_LIST_KEYS = ("items", "points", "bullets")
# summary-with-video/ fields kept; everything else there (media_mapping, video_url, the inline
# message and embeds) carries signed URLs and never reaches a table
VIDEO_CITATION_FIELDS = ("segment_ids", "start_seconds", "end_seconds", "placeholder")
_EMBED = re.compile(r"!\[([^\]]*)\]\([^)]*\)")  # ![label](url): an inline media embed
_URL = re.compile(r"https?://\S+")


def classify_error(answer: ApiResponse) -> MeetingEltError | None:
    """401 after a fresh token means the application itself is refused; 403 names the org."""
    message = error_message(answer.body)
    if answer.status == 401:
        return AuthError(f"authentication failed: {message}", status=401, url=answer.url,
                         hint="check client_id and client_secret (sources.meemo) and that the "
                              "application is still active")
    if answer.status == 403:
        return ScopeError(f"forbidden: {message}", status=403, url=answer.url,
                          hint="the application has no access to this organization or meeting")
    return None


class DrfPaginator(NextUrlPaginator):
    """Django REST framework pages: the absolute `next` URL when the answer has one; where it
    has none (`{"count", "results"}` only, as older builds send the webhook log), the next
    page number while `count` says more items remain."""

    def __init__(self, page_size: int) -> None:
        super().__init__("next")
        self.page_size = page_size
        self.pages = 0
        self.by_count = False

    def update_state(self, answer: ApiResponse, items: list) -> None:
        self.pages += 1
        body = answer.body if isinstance(answer.body, dict) else {}
        if "next" in body:
            self.by_count = False
            self.next_reference = body.get("next")
            return
        count = read_int(body.get("count"))
        self.by_count = True
        more = bool(items) and count is not None and self.pages * self.page_size < count
        self.next_reference = self.pages + 1 if more else None

    def update_request(self, request: PageRequest) -> None:
        if self.by_count:
            request.params["page"] = self.next_reference
        else:
            super().update_request(request)


# ---------------------------------------------------------------------- stage signals
def has_stages(item: dict) -> bool:
    """False for meetings of older builds, which send none of the three stage objects."""
    return any(name in item for name in STAGES)


def stage(item: dict, name: str) -> str | None:
    """The status of a processing stage (`recording`, `transcription`, `summarization`),
    lower case; the object may come as JSON text."""
    value = read_dict(item.get(name))
    status = read_text(value.get("status")) if value else None
    return status.strip().lower() if status else None


def status(item: dict) -> str | None:
    text = read_text(item.get("status"))
    return text.strip().lower() if text else None


def flag(value: Any) -> bool | None:
    """A boolean, also when sent as text ("true") or 0/1; None when it is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = read_text(value)
    lowered = text.strip().lower() if text else None
    return {"true": True, "false": False, "1": True, "0": False}.get(lowered) if lowered else None


def ended(item: dict) -> bool:
    return status(item) == FINISHED_STATUS


def summary_complete(item: dict) -> bool:
    return flag(item.get("summary_complete")) is True


def transcript_ready(item: dict) -> bool:
    """Worth fetching: the stage says completed, or (no stages) the meeting has ended; an empty
    answer of a meeting without stages is not final until its summary is complete."""
    return stage(item, "transcription") == STAGE_DONE if has_stages(item) else ended(item)


def summary_ready(item: dict) -> bool:
    if not has_stages(item):
        return summary_complete(item)
    state = stage(item, "summarization")
    return state == STAGE_DONE or (state is None and summary_complete(item))


def recording_ready(item: dict) -> bool:
    return stage(item, "recording") == STAGE_DONE if has_stages(item) else ended(item)


def unfinished(item: dict) -> bool:
    """The vendor is not done with the meeting: upcoming or running, a stage pending or in
    progress, or (older builds, without stages) its summary not complete yet."""
    if status(item) != FINISHED_STATUS:
        return True
    if not has_stages(item):
        return not summary_complete(item)
    return any(stage(item, name) in STAGE_WAITING for name in STAGES)


# the version a transcript is fetched for: once per completion of its stage (a stage run again
# is fetched again: `Part.rearm`); an older build's is fetched once the meeting has ended, an
# empty answer then being not final (`TRANSCRIPT_PENDING`) until the summary is complete
TRANSCRIPT_PENDING = "pending"


def transcript_version(item: dict) -> str:
    if has_stages(item):
        return STAGE_DONE
    return "final" if summary_complete(item) else TRANSCRIPT_PENDING


def served_segments(body: dict) -> list[dict]:
    """The segments a transcript answer serves (confidential ones are left out by the API)."""
    return [s for s in read_list(body.get("transcripts")) or [] if isinstance(s, dict)]


def event_status(event: dict) -> str:
    """The delivery status, lower case (the API sends `SUCCESS`, `FAILED`)."""
    return (read_text(event.get("status")) or "").strip().lower()


def event_final(event: dict) -> bool:
    return event_status(event) in FINAL_EVENT_STATUSES


def day_of(value: object) -> str | None:
    """The UTC day of an instant, as `YYYY-MM-DD`; None when it cannot be read."""
    instant = read_instant(value)
    return instant.date().isoformat() if instant else None


def vendor_id(value: str) -> int | str:
    """An id as the API types it (an integer), from its text in the ledger."""
    return int(value) if value.isdigit() else value


def without_secrets(row: dict) -> dict:
    """The row minus any webhook signing secret (it must never reach a table)."""
    return {k: v for k, v in row.items() if k not in SECRET_FIELDS}


# ---------------------------------------------------------------------- tolerant shaping
def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


def conform(row: dict, table: str, problems: Problems) -> dict:
    """The row with its documented top-level fields read as their column types.

    A number sent as text is read as the number, an object or list sent as JSON text as the
    object, a bool as text as the bool (each noted as repaired). What cannot be read as its
    type (an unparsable or empty timestamp, text where a number belongs, an object where text
    belongs) is null, its raw value kept as text in `<field>__raw`, and noted. Types never
    vary between loads, so no later load fails on a column that changed type.
    """
    out = dict(row)
    for name, kind in COLUMN_TYPES[table].items():
        value = out.get(name)
        if "__" in name or value is None:
            continue
        if kind == "timestamp":
            read: Any = value if isinstance(value, datetime) else read_instant(value)
            exact = isinstance(value, datetime) or (isinstance(value, str) and read is not None)
        elif kind == "double":
            read = read_float(value)
            exact = isinstance(value, int | float) and not isinstance(value, bool)
        elif kind == "bigint":
            read = read_int(value)
            exact = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "bool":
            read, exact = flag(value), isinstance(value, bool)
        elif kind == "text":
            read = value if isinstance(value, str) else read_text(value)
            exact = isinstance(value, str)
            if read is None:  # an object or a list where text belongs: kept as its JSON text
                read = _as_text(value)
                problems.note(name, value, "its JSON text")
                out[name] = read
                continue
        elif kind == "json":
            if isinstance(value, str):
                decoded = read_dict(value)
                decoded = decoded if decoded is not None else read_list(value)
                if decoded is not None:
                    problems.note(name, value, "an object" if isinstance(decoded, dict) else "a list")
                    out[name] = decoded
            continue
        else:
            continue
        if read is None:
            problems.note(name, value)
            out[name], out[f"{name}__raw"] = None, _as_text(value)
        elif not exact:
            problems.note(name, value, read)
            out[name] = read
    return out


def meeting_row(item: dict | None, detail: dict, organization_id: int, problems: Problems) -> dict[str, Any]:
    """A `meetings` row: the list item and its detail (a superset, except `host_name`, which
    some details lack: then the host's name). A stage that is null or absent is left out, so
    its typed `<stage>__status` columns stay null instead of adding an untyped one."""
    row = {**(item or {}), **detail, "organization_id": organization_id}
    if row.get("id") is not None:
        row["meeting_id"] = str(row["id"])  # the key as text, as every child table holds it
    host = read_dict(row.get("host"))
    if is_blank(row.get("host_name")) and host and isinstance(host.get("name"), str):
        row["host_name"] = host["name"]
    for name in STAGES:
        value = row.get(name)
        if value is None:
            row.pop(name, None)
        elif not isinstance(value, dict):
            parsed = read_dict(value)
            problems.check(name, value, parsed)
            if parsed is None:
                row[f"{name}__raw"] = _as_text(value)
                row.pop(name)
            else:
                row[name] = parsed
                problems.note(name, value, "an object")
    if host is not None and host is not row.get("host"):
        problems.note("host", row["host"], "an object")
        row["host"] = host
    return conform(row, "meetings", problems)
# ---------------------------------------------------------------------- summaries
def render_legacy_summary(value: Any, depth: int = 2) -> str:
    """Markdown text of a pre-2024 summary object (`{"overview", "sections": [...]}`).

    Known keys come first in a fixed order; any other key is rendered under its own
    heading, so nothing in the object is lost from the text.
    """
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return "\n".join(f"- {render_legacy_summary(v, depth + 1)}" for v in value if v not in (None, ""))
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    parts: list[str] = []
    if value.get("overview"):
        parts.append(render_legacy_summary(value["overview"], depth))
    for section in value.get("sections") or []:
        if isinstance(section, dict):
            title = section.get("title") or section.get("heading")
            body = [render_legacy_summary(section[k], depth + 1)
                    for k in LEGACY_SECTION_TEXT_KEYS + LEGACY_SECTION_LIST_KEYS if section.get(k)]
            others = {k: v for k, v in section.items() if k not in
                      {"title", "heading", *LEGACY_SECTION_TEXT_KEYS, *LEGACY_SECTION_LIST_KEYS}}
            body += [render_legacy_summary({k: v}, depth + 1) for k, v in others.items() if v]
            parts.append("\n\n".join(([f"{'#' * depth} {title}"] if title else []) + body))
        else:
            parts.append(render_legacy_summary(section, depth))
    for key, item in value.items():
        if key not in ("overview", "sections") and item not in (None, "", [], {}):
            parts.append(f"{'#' * depth} {key.replace('_', ' ').capitalize()}\n\n"
                         f"{render_legacy_summary(item, depth + 1)}")
    return "\n\n".join(p for p in parts if p)


def summary_row(meeting_id: int | str, organization_id: int, body: dict, problems: Problems,
                video: dict | None = None) -> dict[str, Any]:
    """A `summaries` row: `summary` is always text when there is one (Markdown as served,
    or the legacy object rendered as Markdown); `summary_json` keeps the legacy object.
    With `video` (the summary-with-video/ answer), the fields it adds, without any URL."""
    raw = body.get("summary")
    if isinstance(raw, str):
        text, kind, original = raw, "markdown", None
    elif raw is None:
        text, kind, original = None, None, None
    else:
        text, kind, original = render_legacy_summary(raw), "legacy_json", raw
    row = {k: v for k, v in body.items() if k != "summary"}
    row = {**row, "meeting_id": str(meeting_id), "organization_id": organization_id,
           "summary": text, "summary_format": kind, "summary_json": original}
    if video is not None:
        row.update(video_fields(video, text))
    return conform(row, "summaries", problems)


def without_urls(text: Any) -> str | None:
    """Markdown with its inline media embeds reduced to their labels and any URL dropped."""
    if not isinstance(text, str):
        return None
    return _URL.sub("", _EMBED.sub(lambda m: f"[{m.group(1)}]", text))


def video_fields(body: dict, summary: str | None) -> dict[str, Any]:
    """What summary-with-video/ adds beyond summary/: the recording it describes, its video id,
    whether there is a video, the summary with timestamp placeholders, and the citations
    (segment ids -> seconds). Never `media_mapping`, `video_url`, the inline message or the
    inline embeds: they carry signed URLs."""
    markdown = body.get("summary_markdown")
    mapping = body.get("media_mapping")
    citations = read_list(body.get("citations"))
    return {
        "record_id": body.get("record_id"),
        # the summary of `record_id`, where it differs from summary/ (which reads the first record)
        "record_summary": markdown if isinstance(markdown, str) and markdown != summary else None,
        "video_id": body.get("video_id") or None,
        "has_video": bool(body.get("video_url")) or bool(mapping),
        "placeholder_message_markdown": without_urls(body.get("placeholder_message_markdown")) or None,
        "citations": None if citations is None else [
            {k: (without_urls(c.get(k)) if k == "placeholder" else c.get(k)) for k in VIDEO_CITATION_FIELDS}
            for c in citations if isinstance(c, dict)],
    }


# ---------------------------------------------------------------------- per-meeting rows
def transcript_rows(meeting_id: int | str, organization_id: int, body: dict,
                    report: RunReport | None = None) -> tuple[list[dict], dict]:
    """Canonical segments in the API's order and indices as served, plus the `transcripts` row.

    Confidential segments are left out by the API, so `total_segments` may exceed the
    segments served; the difference is kept as `withheld_segments`. A segment with null text
    or no start time is loaded as it is (null there) and named in `report`.
    """
    served = served_segments(body)
    rows = []
    for index, s in enumerate(served):
        extra = {k: v for k, v in s.items() if k not in ("speaker", "text", "start_time", "end_time")
                 and not isinstance(v, dict | list)}
        missing = [name for name in ("text", "start_time") if s.get(name) is None]
        if report is not None and missing:
            report.bad_record(SEGMENTS, f"{meeting_id}#{index}", f"{' and '.join(missing)} missing or null: "
                              "loaded with null there", loaded=True)
        rows.append({**extra, "meeting_id": str(meeting_id), "segment_index": index,
                     "speaker": s.get("speaker"), "start_seconds": s.get("start_time"),
                     "end_seconds": s.get("end_time"), "text": s.get("text"),
                     "organization_id": organization_id})
    total = read_int(body.get("total_segments"))
    summary = {"meeting_id": str(meeting_id), "organization_id": organization_id, "title": body.get("title"),
               "total_segments": total, "served_segments": len(served),
               "withheld_segments": max(0, total - len(served)) if total is not None else None}
    return rows, summary


def participant_rows(meeting_id: int | str, organization_id: int, body: dict) -> list[dict]:
    return [{**p, "meeting_id": str(meeting_id), "participant_index": i, "organization_id": organization_id}
            for i, p in enumerate(body.get("participants") or []) if isinstance(p, dict)]


def recording_row(meeting_id: int | str, organization_id: int, body: dict) -> dict:
    return {**body, "meeting_id": str(meeting_id), "organization_id": organization_id}


def recording_hash(row: dict) -> str:
    """The row's (or the answer's) content without its signed URLs (they change on every call)."""
    assets = [{k: v for k, v in a.items() if k != "url"} for a in row.get("assets") or [] if isinstance(a, dict)]
    return row_hash({**{k: v for k, v in row.items() if k not in RECORDING_VOLATILE}, "assets": assets})
