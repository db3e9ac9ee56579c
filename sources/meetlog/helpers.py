"""meetlog specifics: error classes, which scope a path needs, record ids and versions, malformed fields."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import httpx

from .._common.errors import AuthError, MeetingEltError, NotFoundError, ScopeError
from .._common.http import ApiResponse
from .._common.ledger import row_hash
from .._common.paginators import dig
from .._common.records import (
    Problems,
    read_bool,
    read_float,
    read_instant,
    read_int,
    read_list,
    report_problems,
)
from .._common.redaction import redact
from .._common.report import RunReport
from .._common.snapshots import id_of
from .settings import API_PREFIX, COMPLETED, FIELD_KINDS

_SCOPE = re.compile(r"(export:[a-z_]+)")


def api_root(base_url: str) -> str:
    """`base_url` may be the host or the full `/api/v1/export` root; both work."""
    base = base_url.rstrip("/")
    return base if base.endswith(API_PREFIX) else f"{base}/{API_PREFIX}"


def message_of(body: Any) -> str:
    """`error_message` of the vendor's error body (`error_code`, `error_message`, `status_code`)."""
    for key in ("error_message", "message", "error_code"):
        found = dig(body, key)
        if isinstance(found, str) and found:
            return redact(found)
    return ""


def classify_error(answer: ApiResponse) -> MeetingEltError | None:
    """Typed errors from the vendor's body; names the missing scope of a 403."""
    message = message_of(answer.body) or f"HTTP {answer.status}"
    if answer.status == 401:
        return AuthError(f"meetlog refused the API token: {message}", status=401, url=answer.url)
    if answer.status == 403:
        found = _SCOPE.search(message)
        return ScopeError(f"forbidden: {message}", scope=found.group(1) if found else None,
                          status=403, url=answer.url)
    if answer.status == 404:
        return NotFoundError(f"not found: {message}", status=404, url=answer.url)
    return None


def scope_of_request(request: httpx.Request) -> str | None:
    """The scope an export path needs: `/api/v1/export/reports/…` -> `export:reports`."""
    path = request.url.path
    marker = "/" + API_PREFIX + "/"
    if marker not in path:
        return None
    resource = path.split(marker, 1)[1].split("/", 1)[0]
    return f"export:{resource}" if resource else None


record_id = id_of("id")  # a record's id as text; None for a non-object or a blank id


def version(record: dict[str, Any], detail_fields: Iterable[str]) -> str:
    """A short hash of a record's list fields: tells a changed list item from a re-sent one
    (a detail answer, which repeats the list fields, has the version of its list item)."""
    skip = set(detail_fields)
    return row_hash({k: v for k, v in record.items() if k not in skip} | {"id": record_id(record)})


def read_status(value: Any) -> str | None:
    """A record's status as text; None when it is missing or not text (then it is unknown)."""
    return value if isinstance(value, str) else None


LISTED_BY_CREATED_AT = ("transcripts", "reports")  # newest-first lists read down to what is loaded
_REPAIRS = {"int": read_int, "float": read_float, "bool": read_bool, "list": read_list}
_EXACT = {"int": (int,), "float": (int, float), "bool": (bool,), "list": (list,)}


def created_at_problem(item: dict[str, Any]) -> str | None:
    """Why a listed record's `created_at` cannot mark where a newest-first read stops, if it cannot."""
    value = item.get("created_at")
    if value is None:
        return f"created_at is {'null' if 'created_at' in item else 'missing'}: it cannot mark where a run stops"
    if read_instant(value) is None:
        problems = Problems()
        problems.note("created_at", value)
        return problems.text()
    return None


def tidy(table: str, row: dict[str, Any], report: RunReport) -> dict[str, Any]:
    """Repairs `row`'s documented fields in place where a value stands for its documented type
    (`"1842"` for a number, a list sent as its JSON text) and names the record in `report`
    when a field was repaired or could not be read.

    A value that cannot be read is left as sent: dlt keeps it in a variant column
    (`created_at__v_text`), or flattens an object sent for text (`status__code`).
    """
    problems = Problems()
    for name, kind in FIELD_KINDS.get(table, {}).items():
        value = row.get(name)
        if kind == "instant":
            if name == "created_at" and table in LISTED_BY_CREATED_AT:
                why = created_at_problem(row)
                if why:
                    problems.notes.append(why)
            elif value is not None and read_instant(value) is None:
                problems.note(name, value)
            continue
        if value is None:
            continue
        if kind == "text":
            if isinstance(value, dict | list):
                why = "; its processing state is unknown: loaded as listed" if name == "status" else ""
                problems.notes.append(f"{name} is not text ({type(value).__name__}){why}")
            continue
        if isinstance(value, _EXACT[kind]) and not (kind != "bool" and isinstance(value, bool)):
            continue
        repaired = _REPAIRS[kind](value)
        if repaired is None:
            problems.note(name, value)
        else:
            problems.note(name, value, repaired)
            row[name] = repaired
    if table == "transcripts" and row.get("status") == COMPLETED and "text" in row and row["text"] is None:
        problems.notes.append("completed, but its text is null")
    report_problems(report, table, row.get("id"), problems)
    return row
