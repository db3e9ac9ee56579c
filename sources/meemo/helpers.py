"""Meemo specifics: error classes, and reshaping answers into table rows."""

from __future__ import annotations

from typing import Any

from .._common.errors import AuthError, MeetingEltError, ScopeError
from .._common.http import ApiResponse, error_message
from .._common.state import row_hash
from .settings import RECORDING_VOLATILE, SECRET_FIELDS, STAGE_DONE

STAGES = ("recording", "transcription", "summarization")
LEGACY_SECTION_TEXT_KEYS = ("content", "text", "summary", "body")
LEGACY_SECTION_LIST_KEYS = ("items", "points", "bullets")


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


def stage(item: dict, name: str) -> str | None:
    """The status of a processing stage (`recording`, `transcription`, `summarization`)."""
    value = item.get(name)
    return value.get("status") if isinstance(value, dict) else None


def transcript_ready(item: dict) -> bool:
    return stage(item, "transcription") == STAGE_DONE


def summary_ready(item: dict) -> bool:
    status = stage(item, "summarization")
    return status == STAGE_DONE or (status is None and item.get("summary_complete") is True)


def recording_ready(item: dict) -> bool:
    return stage(item, "recording") == STAGE_DONE


def without_secrets(row: dict) -> dict:
    """The row minus any webhook signing secret (it must never reach a table)."""
    return {k: v for k, v in row.items() if k not in SECRET_FIELDS}


def meeting_row(item: dict | None, detail: dict, organization_id: int) -> dict[str, Any]:
    """A `meetings` row: the list item and its detail (a superset). A stage that is null is
    left out, so its typed `<stage>__status` columns stay null instead of adding an untyped one."""
    row = {**(item or {}), **detail, "organization_id": organization_id}
    for name in STAGES:
        if row.get(name) is None:
            row.pop(name, None)
    return row


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


def summary_row(meeting_id: int, organization_id: int, body: dict) -> dict[str, Any]:
    """A `summaries` row: `summary` is always text when there is one (Markdown as served,
    or the legacy object rendered as Markdown); `summary_json` keeps the legacy object."""
    raw = body.get("summary")
    if isinstance(raw, str):
        text, kind, original = raw, "markdown", None
    elif raw is None:
        text, kind, original = None, None, None
    else:
        text, kind, original = render_legacy_summary(raw), "legacy_json", raw
    row = {k: v for k, v in body.items() if k != "summary"}
    return {**row, "meeting_id": meeting_id, "organization_id": organization_id,
            "summary": text, "summary_format": kind, "summary_json": original}


# ---------------------------------------------------------------------- per-meeting rows
def transcript_rows(meeting_id: int, organization_id: int, body: dict) -> tuple[list[dict], dict]:
    """Canonical segments in the API's order and indices as served, plus the `transcripts` row.

    Confidential segments are left out by the API, so `total_segments` may exceed the
    segments served; the difference is kept as `withheld_segments`.
    """
    served = [s for s in body.get("transcripts") or [] if isinstance(s, dict)]
    rows = []
    for index, s in enumerate(served):
        extra = {k: v for k, v in s.items() if k not in ("speaker", "text", "start_time", "end_time")
                 and not isinstance(v, dict | list)}
        rows.append({**extra, "meeting_id": str(meeting_id), "segment_index": index,
                     "speaker": s.get("speaker"), "start_seconds": _float(s.get("start_time")),
                     "end_seconds": _float(s.get("end_time")), "text": s.get("text"),
                     "organization_id": organization_id})
    total = body.get("total_segments")
    summary = {"meeting_id": meeting_id, "organization_id": organization_id, "title": body.get("title"),
               "total_segments": total, "served_segments": len(served),
               "withheld_segments": max(0, total - len(served)) if isinstance(total, int) else None}
    return rows, summary


def participant_rows(meeting_id: int, organization_id: int, body: dict) -> list[dict]:
    return [{**p, "meeting_id": meeting_id, "participant_index": i, "organization_id": organization_id}
            for i, p in enumerate(body.get("participants") or []) if isinstance(p, dict)]


def recording_row(meeting_id: int, organization_id: int, body: dict) -> dict:
    return {**body, "meeting_id": meeting_id, "organization_id": organization_id}


def recording_hash(row: dict) -> str:
    """The row's content without its signed URLs (which change on every call)."""
    assets = [{k: v for k, v in a.items() if k != "url"} for a in row.get("assets") or [] if isinstance(a, dict)]
    return row_hash({**{k: v for k, v in row.items() if k not in RECORDING_VOLATILE}, "assets": assets})


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
