"""Meetric workspace specifics: error classes per account, and answers shaped into Arrow pages.

Rows go to dlt as Arrow tables (dlt's row-by-row normaliser is ~15x slower on these
volumes). Every table has a declared column list with types; vendor fields the list does
not know are kept as extra columns, nested values (lists, objects) become JSON columns,
and a value that does not fit its type is loaded as null with a warning naming the record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .._common.errors import AuthError, BadRequestError, MeetingEltError, ScopeError
from .._common.http import ApiResponse, error_message
from .._common.report import RunReport
from .._common.timeutil import parse_instant

TS = pa.timestamp("us", tz="UTC")
KINDS: dict[str, pa.DataType] = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(),
                                 "bool": pa.bool_(), "ts": TS, "date": pa.date32()}
# (column, kind, nullable); a dotted name flattens an object field: sentiment.score -> sentiment__score
COLUMNS: dict[str, list[tuple[str, str, bool]]] = {
    "conversations": [
        ("id", "str", False), ("account_id", "str", False), ("title", "str", True), ("date", "ts", True),
        ("duration", "int", True), ("department", "str", True), ("participants", "json", True),
        ("status", "str", True), ("summary", "str", True), ("sentiment.score", "float", True),
        ("sentiment.label", "str", True), ("recording_url", "str", True), ("transcript_url", "str", True),
        ("created_at", "ts", True), ("updated_at", "ts", True)],
    # one table for the three insight types: each type's own fields are null on the others
    "insights": [
        ("id", "str", False), ("account_id", "str", False), ("conversation_id", "str", True),
        ("type", "str", True), ("content", "str", True), ("created_at", "ts", True),
        ("assigned_to", "str", True), ("due_date", "date", True), ("status", "str", True),
        ("confidence", "float", True), ("keywords", "json", True), ("relevance_score", "float", True),
        ("participants", "json", True)],
    "action_items": [
        ("id", "str", False), ("account_id", "str", False), ("conversation_id", "str", True),
        ("content", "str", True), ("assigned_to", "str", True), ("due_date", "date", True),
        ("status", "str", True), ("created_at", "ts", True), ("updated_at", "ts", True)],
    "users": [
        ("id", "str", False), ("account_id", "str", False), ("name", "str", True), ("email", "str", True),
        ("role", "str", True), ("team_id", "str", True), ("department_id", "str", True),
        ("is_active", "bool", True), ("created_at", "ts", True)],
    "team_managers": [
        ("team_id", "str", False), ("user_id", "str", False), ("account_id", "str", False),
        ("name", "str", True), ("email", "str", True), ("assigned_at", "ts", True), ("deleted_at", "ts", True)],
    "department_managers": [
        ("department_id", "str", False), ("user_id", "str", False), ("account_id", "str", False),
        ("name", "str", True), ("email", "str", True), ("assigned_at", "ts", True), ("deleted_at", "ts", True)],
    "insight_trends": [
        ("account_id", "str", False), ("period_start", "date", False), ("conversations", "int", True),
        ("total_duration", "int", True), ("avg_sentiment", "float", True), ("action_items", "int", True)],
    "insight_summary": [
        ("account_id", "str", False), ("period_start", "date", False), ("period_end", "date", False),
        ("total_conversations", "int", True), ("total_duration", "int", True),
        ("avg_sentiment", "float", True), ("action_items_open", "int", True),
        ("action_items_completed", "int", True), ("top_topics", "json", True)],
}
INSIGHT_TYPES = ("action_item", "topic", "decision")


def classify_error(account_id: str) -> Callable[[ApiResponse], MeetingEltError | None]:
    """An error classifier that names the account: with several accounts, 'which one' matters."""

    def classify(answer: ApiResponse) -> MeetingEltError | None:
        message = error_message(answer.body)
        param = (answer.body.get("error") or {}).get("param") if isinstance(answer.body, dict) else None
        if answer.status == 401:
            return AuthError(
                f"account '{account_id}': authentication failed: {message}", status=401, url=answer.url,
                hint=f"check that account_id '{account_id}' is right and that its api_key belongs to it "
                     "(in .dlt/secrets.toml or SOURCES__MEETRIC__*)")
        if answer.status == 403:
            return ScopeError(f"account '{account_id}': insufficient permissions: {message}",
                              status=403, url=answer.url,
                              hint="the key's role may not read this endpoint; a read-only key is enough "
                                   "for every table")
        if answer.status == 400:
            return BadRequestError(f"account '{account_id}': invalid parameter"
                                   f"{f' {param!r}' if param else ''}: {message}", status=400, url=answer.url)
        return None

    return classify


def instant(value: Any) -> datetime | None:
    """An ISO 8601 instant as aware UTC (no offset: taken as UTC); None when unparsable.

    `datetime.fromisoformat` takes every shape the API sends (Z, offsets, no fraction) ~50x
    faster than pendulum, which stays the fallback for anything else."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return parse_instant(value)
    except Exception:
        return None


def day(value: Any) -> date | None:
    """The UTC calendar day of an instant (or of a `YYYY-MM-DD`); None when unparsable."""
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    found = instant(value)
    return found.date() if found else None


def with_id(items: Iterable[Any], table: str, account_id: str, report: RunReport,
            key: str = "id") -> list[dict]:
    """The records that carry a key; a record without one cannot be merged: it is named and left out."""
    good = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get(key), str | int) and item.get(key) != "":
            good.append(item)
        else:
            report.warn(f"{table}: account '{account_id}': a record without '{key}' was not loaded: "
                        f"{str(item)[:200]}")
    return good


def arrow_page(table: str, rows: list[dict], report: RunReport, *, account_id: str,
               key: str = "id") -> pa.Table:
    """Builds the Arrow page of `table` from vendor rows, with `account_id` on every row."""
    spec = COLUMNS[table]
    ids = [str(r.get(key, "?")) for r in rows]
    names, arrays, fields = [], [], []
    parents = {name.split(".")[0] for name, _, _ in spec if "." in name}
    known = {name.split(".")[0] for name, _, _ in spec}
    for name, kind, nullable in spec:
        if "." in name:
            parent, child = name.split(".", 1)
            values = [(r.get(parent) or {}).get(child) if isinstance(r.get(parent), dict) else None for r in rows]
            column = f"{parent}__{child}"
        elif name == "account_id":
            values, column = [account_id] * len(rows), name
        else:
            values, column = [r.get(name) for r in rows], name
        array = _typed(values, kind, table, column, ids, report)
        names.append(column)
        arrays.append(array)
        fields.append(pa.field(column, array.type, nullable=nullable))
    extras = sorted({k for r in rows for k in r} - known)
    for parent in sorted(parents):  # unknown keys inside a flattened object
        subkeys = {k for r in rows if isinstance(r.get(parent), dict) for k in r[parent]}
        declared = {n.split(".", 1)[1] for n, _, _ in spec if n.startswith(parent + ".")}
        for child in sorted(subkeys - declared):
            extras.append(f"{parent}.{child}")
    for extra in extras:
        if "." in extra:
            parent, child = extra.split(".", 1)
            values = [r[parent].get(child) if isinstance(r.get(parent), dict) else None for r in rows]
            column = f"{parent}__{child}"
        else:
            values, column = [r.get(extra) for r in rows], extra
        if all(v is None for v in values):
            continue  # nothing to type it by: the column appears with its first value
        array = _inferred(values)
        names.append(column)
        arrays.append(array)
        fields.append(pa.field(column, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _typed(values: list[Any], kind: str, table: str, column: str, ids: list[str],
           report: RunReport) -> pa.Array:
    if kind == "json":
        return _inferred(values, nested=True)
    target = KINDS[kind]
    try:
        if kind == "ts":
            return pc.cast(pa.array(values, type=pa.string()), TS)
        if kind == "date":
            return pc.cast(pa.array(values, type=pa.string()), pa.date32())
        return pa.array(values, type=target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        pass
    out = []
    for record_id, value in zip(ids, values, strict=True):
        converted = _coerce(value, kind)
        if converted is None and value is not None:
            report.warn(f"{table}: record '{record_id}': {column}={str(value)[:60]!r} is not a valid "
                        f"{kind}; loaded as null")
        out.append(converted)
    return pa.array(out, type=target)


def _coerce(value: Any, kind: str) -> Any:
    if value is None:
        return None
    try:
        if kind == "ts":
            return instant(value)
        if kind == "date":
            return date.fromisoformat(value[:10]) if isinstance(value, str) else None
        if kind == "int":
            return int(value) if not isinstance(value, bool) and float(value) == int(float(value)) else None
        if kind == "float":
            return float(value) if not isinstance(value, bool) else None
        if kind == "bool":
            return value if isinstance(value, bool) else None
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    except Exception:
        return None


def _inferred(values: list[Any], *, nested: bool = False) -> pa.Array:
    """An Arrow column inferred from the values; mixed or odd values fall back to JSON text."""
    if all(v is None for v in values):  # no type to infer: keep the column's kind stable
        return pa.array(values, type=pa.list_(pa.string()) if nested else pa.string())
    try:
        array = pa.array(values)
        if not nested or pa.types.is_nested(array.type):
            return array
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    return pa.array([None if v is None else v if isinstance(v, str) and not nested
                         else orjson.dumps(v).decode() for v in values], type=pa.string())
