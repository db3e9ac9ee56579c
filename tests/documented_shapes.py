"""What an API's documentation says its answers look like, and whether a simulator agrees.

The vendor pages (and observed-responses.md) carry JSON examples. `example_after` takes one
out of the page text; `key_paths` turns an answer into {key path: JSON types seen}
(`data[].sentiment.score`; an ISO instant and a `YYYY-MM-DD` date count as types of their
own); `mismatches` lists every documented key path that the served answers lack, or serve
with another type. A field the simulator renames fails, a field it adds does not: real
answers carry fields the docs do not list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

API_DOCS = Path("/work/shared/api-docs")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def page(name: str) -> str:
    """The text of a vendor page (or observed-responses.md) beside DESIGN.md."""
    return (API_DOCS / name).read_text(encoding="utf-8")


def example_after(text: str, *markers: str) -> Any:
    """The first JSON object in `text` after each of `markers`, found in turn."""
    at = 0
    for marker in markers:
        found = text.find(marker, at)
        assert found >= 0, f"marker {marker!r} is not in the page any more"
        at = found + len(marker)
    decoder = json.JSONDecoder()
    while (start := text.find("{", at)) >= 0:
        try:
            return decoder.raw_decode(text, start)[0]
        except json.JSONDecodeError:
            at = start + 1
    raise AssertionError(f"no JSON example after {markers}")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        if INSTANT.match(value) and _parses(value):
            return "instant"
        return "date" if DAY.match(value) and _parses(value) else "string"
    return "array" if isinstance(value, list) else "object"


def key_paths(value: Any, path: str = "", out: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """{key path: the JSON types found there}; list elements share the path `<key>[]`."""
    out = {} if out is None else out
    if path:
        out.setdefault(path, set()).add(json_type(value))
    if isinstance(value, dict):
        for key, child in value.items():
            key_paths(child, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        for child in value:
            key_paths(child, f"{path}[]", out)
    return out


def _fits(documented: str, served: str) -> bool:
    if documented == served or served == "null":
        return True
    if documented == "number":
        return served == "integer"
    if documented == "string":  # a plain text example: any text fits, dates included
        return served in ("instant", "date")
    return False


def mismatches(documented: Any, served: Iterable[Any]) -> list[str]:
    """Documented key paths missing from every served answer, or served with another type.

    A path documented only as null (`"source_url": null`) must be there, of any type.
    """
    expected = key_paths(documented)
    seen: dict[str, set[str]] = {}
    for answer in served:
        key_paths(answer, out=seen)
    problems = []
    for path, types in sorted(expected.items()):
        if path not in seen:
            problems.append(f"{path}: documented, not served")
            continue
        wanted = types - {"null"}
        if not wanted:
            continue
        for got in sorted(seen[path]):
            if not any(_fits(w, got) for w in wanted):
                problems.append(f"{path}: documented {'/'.join(sorted(wanted))}, served {got}")
    return problems


def _parses(value: str) -> bool:
    """True when an instant or a date of the documented shape really is one."""
    try:
        if DAY.match(value):
            date.fromisoformat(value)
        else:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
