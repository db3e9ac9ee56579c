"""meetlog specifics: error classes, which scope a path needs, row versions."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import httpx

from .._common.errors import AuthError, MeetingEltError, NotFoundError, ScopeError
from .._common.http import ApiResponse
from .._common.paginators import dig
from .._common.redaction import redact
from .._common.state import row_hash
from .settings import API_PREFIX

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


def version(record: dict[str, Any], detail_fields: Iterable[str]) -> str:
    """A short hash of a record's list fields: tells a changed list item from a re-sent one."""
    skip = set(detail_fields)
    return row_hash({k: v for k, v in record.items() if k not in skip})
