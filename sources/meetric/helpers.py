"""Meetric workspace specifics: error classes per account, and answers shaped into Arrow pages.

Rows go to dlt as Arrow tables (dlt's row-by-row normaliser is ~15x slower on these
volumes). Every table has a declared column list with types; vendor fields the list does
not know are kept as extra text columns, lists become JSON columns (JSON text in the Arrow
page, declared `json` to dlt: no list-typed Arrow column, so every destination takes the
page, Postgres too), and a value that does not fit its type is read tolerantly or loaded as
null with its raw text beside it (`<column>__raw`); either way the run's report names the
record. Rows read back from the destination (to mark deletions) become Arrow pages of the
same types again (`stored_page`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .._common.errors import AuthError, BadRequestError, MeetingEltError, ScopeError
from .._common.http import ApiResponse, error_message
from .._common.records import (
    Problems,
    excerpt,
    read_bool,
    read_dict,
    read_float,
    read_int,
    read_list,
    read_text,
)
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


def json_columns(table: str) -> dict[str, dict[str, Any]]:
    """Fresh `json` column hints for the table's list columns (dlt writes into hint dicts)."""
    return {name: {"data_type": "json", "nullable": True} for name, kind, _ in COLUMNS[table] if kind == "json"}


def digest_of(item: Any) -> str:
    """A 40-bit content hash: short, because the ledger keeps one per record."""
    return hashlib.blake2b(orjson.dumps(item, option=orjson.OPT_SORT_KEYS, default=str),
                           digest_size=5).hexdigest()


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
    """The records that carry a key, each with its `account_id` (set in place: the items are
    an answer's, parsed for this run); a record without one cannot be merged: it is named
    (by its opening) and left out."""
    good = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get(key), str | int) and not isinstance(item.get(key), bool) \
                and item.get(key) != "":
            item["account_id"] = account_id
            good.append(item)
        else:
            report.bad_record(table, excerpt(item), f"account '{account_id}': a record without '{key}' "
                              "cannot be merged", loaded=False)
    return good


def arrow_page(table: str, rows: list[dict], report: RunReport, *, key: str = "id") -> pa.Table:
    """Builds the Arrow page of `table` from vendor rows, each tagged with its `account_id`.

    Every column has one type whatever the page holds (a column that changed type between
    loads would fail the later one): the declared columns their declared type, fields the
    docs do not list text (JSON for objects, lists and numbers). A value of the wrong type
    is read tolerantly: a number sent as text, or an object or list sent as its JSON text,
    is loaded as the value it stands for; what cannot be read is null, its raw text kept in
    `<column>__raw`. Either way the record is named in the run's report.
    """
    page = _Page(table, rows, key)
    spec = COLUMNS[table]
    parents = {name.split(".")[0] for name, _, _ in spec if "." in name}
    objects = {parent: page.objects(parent) for parent in sorted(parents)}
    known = {name.split(".")[0] for name, _, _ in spec}
    for name, kind, nullable in spec:
        if "." in name:
            parent, child = name.split(".", 1)
            page.add(f"{parent}__{child}", [o.get(child) if o else None for o in objects[parent]], kind, nullable)
        else:
            page.add(name, [r.get(name) for r in rows], kind, nullable)
    for extra in sorted({k for r in rows for k in r} - known):
        page.add_text(extra, [r.get(extra) for r in rows])
    for parent in sorted(parents):  # unknown keys inside a flattened object
        declared = {n.split(".", 1)[1] for n, _, _ in spec if n.startswith(parent + ".")}
        for child in sorted({k for o in objects[parent] if o for k in o} - declared):
            page.add_text(f"{parent}__{child}", [o.get(child) if o else None for o in objects[parent]])
    for i, problems in enumerate(page.problems):
        if problems:
            report.bad_record(table, page.ids[i], f"account '{rows[i].get('account_id')}': {problems.text()}",
                              loaded=True)
    return page.table()


def stored_page(table: str, rows: list[dict]) -> pa.Table:
    """Rows read back from the destination (flattened and typed as stored, `deleted_at` set)
    as an Arrow page of the same column types as `arrow_page` makes: declared columns their
    type, JSON columns as JSON text, every other column text."""
    declared = {name.replace(".", "__"): (kind, nullable) for name, kind, nullable in COLUMNS[table]}
    declared.setdefault("deleted_at", ("ts", True))
    names = [n for n in declared if any(n in r for r in rows)]
    names += sorted({k for r in rows for k in r} - set(names))
    arrays, fields = [], []
    for name in names:
        kind, nullable = declared.get(name, ("str", True))
        values = [r.get(name) for r in rows]
        if kind == "json":
            kind, values = "str", [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]
        array = pa.array(values, type=KINDS[kind])
        arrays.append(array)
        fields.append(pa.field(name, array.type, nullable=nullable))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


class _Page:
    """The columns of one Arrow page, and what was wrong with each row's values."""

    def __init__(self, table: str, rows: list[dict], key: str) -> None:
        self.table_name, self.rows = table, rows
        self.ids = [str(r.get(key, "?")) for r in rows]
        self.problems = [Problems() for _ in rows]
        self.names: list[str] = []
        self.arrays: list[pa.Array] = []
        self.fields: list[pa.Field] = []
        self.raw: dict[str, list[str | None]] = {}

    def _keep_raw(self, column: str, i: int, value: Any) -> None:
        kept = self.raw.setdefault(column, [None] * len(self.rows))
        kept[i] = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        self.problems[i].note(column, value)

    def objects(self, parent: str) -> list[dict | None]:
        """The object field `parent` of every row; one sent as its JSON text is decoded."""
        values = [r.get(parent) for r in self.rows]
        if all(v is None or isinstance(v, dict) for v in values):  # as documented: nothing to read
            return values
        out: list[dict | None] = []
        for i, r in enumerate(self.rows):
            value = r.get(parent)
            found = read_dict(value)
            if found is None and value is not None:
                self._keep_raw(parent, i, value)
            elif found is not None and not isinstance(value, dict):
                self.problems[i].note(parent, value, "an object")
            out.append(found)
        return out

    def add(self, column: str, values: list[Any], kind: str, nullable: bool = True) -> None:
        array = self._typed(column, values, kind)
        self.names.append(column)
        self.arrays.append(array)
        self.fields.append(pa.field(column, array.type, nullable=nullable))

    def add_text(self, column: str, values: list[Any]) -> None:
        """A field the docs do not list: text, whatever its values are, so its type never moves."""
        if all(v is None for v in values):
            return  # nothing to keep: the column appears with its first value
        texts = [None if v is None else v if isinstance(v, str) else orjson.dumps(v, default=str).decode()
                 for v in values]
        self.add(column, texts, "str")

    def _typed(self, column: str, values: list[Any], kind: str) -> pa.Array:
        if kind == "json":
            return self._lists(column, values)
        target = KINDS[kind]
        try:
            if kind in ("ts", "date"):
                return pc.cast(pa.array(values, type=pa.string()), target)
            return pa.array(values, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError,
                OverflowError):
            pass
        reader = READERS[kind]
        out = []
        for i, value in enumerate(values):
            converted = reader(value)
            if converted is None and value is not None:
                self._keep_raw(column, i, value)
            elif converted is not None and kind not in ("ts", "date") and (
                    type(converted) is not type(value) and not (kind == "float" and isinstance(value, int)
                                                                and not isinstance(value, bool))):
                self.problems[i].note(column, value, converted)
            out.append(converted)
        return pa.array(out, type=target)

    def _lists(self, column: str, values: list[Any]) -> pa.Array:
        """A list column (JSON in the warehouse) as JSON text: lists as sent, a list sent as its
        JSON text decoded, anything else null with its raw text kept."""
        documented = all(v is None or isinstance(v, list) for v in values)  # nothing to read
        out: list[str | None] = []
        for i, value in enumerate(values):
            found = value if documented else read_list(value)
            if found is None and value is not None:
                self._keep_raw(column, i, value)
            elif found is not None and not isinstance(value, list):
                self.problems[i].note(column, value, "a list")
            out.append(None if found is None else orjson.dumps(found, default=str).decode())
        return pa.array(out, type=pa.string())

    def table(self) -> pa.Table:
        names, arrays, fields = list(self.names), list(self.arrays), list(self.fields)
        for column, kept in sorted(self.raw.items()):
            names.append(f"{column}__raw")
            arrays.append(pa.array(kept, type=pa.string()))
            fields.append(pa.field(f"{column}__raw", pa.string()))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def read_date(value: Any) -> date | None:
    """A `YYYY-MM-DD` (or the UTC day of an instant); None when unreadable."""
    return day(value) if isinstance(value, str) else None


READERS: dict[str, Callable[[Any], Any]] = {
    "str": read_text, "int": read_int, "float": read_float, "bool": read_bool, "ts": instant, "date": read_date}
