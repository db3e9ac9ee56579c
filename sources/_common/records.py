"""Reading vendor records that may be malformed, and naming the ones that are.

A bad record never fails a run and is never lost silently (DESIGN.md). The readers here
never raise: a number sent as a string is read as the number, an object sent as a JSON
string as the object, and a value that cannot be read as its documented type (an
unparsable or empty timestamp, text where a number belongs) as None. The record itself is
still loaded as the vendor sent it, so its raw value stays in its column (dlt keeps a
value of another type in a variant column `<column>__v_<type>`), and the run names it:
`report.bad_record(table, id, problem)` lists it in the run's summary.

Code that shapes one record into rows runs through `shape_or_none(...)`: whatever a
record's data makes it raise (a `TypeError` on a string where a dict was documented, …)
names that record and lets the rest of the run go on, instead of ending it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from .timeutil import parse_instant

if TYPE_CHECKING:
    from .report import RunReport

# what malformed data makes shaping code raise (never an API or config error: those are
# MeetingEltError and keep their own meaning)
BAD_DATA_ERRORS: tuple[type[BaseException], ...] = (
    TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError, OverflowError,
)
try:  # pyarrow raises its own errors for values it cannot convert
    import pyarrow as _pa

    BAD_DATA_ERRORS += (_pa.ArrowException,)
except ImportError:  # pragma: no cover - pyarrow comes with dlt[parquet]
    pass


def is_blank(value: Any) -> bool:
    """None or an empty/whitespace string: the field carries nothing."""
    return value is None or (isinstance(value, str) and not value.strip())


def read_float(value: Any) -> float | None:
    """A number, or a number sent as a string (`"12.5"`); None when neither (or NaN/inf)."""
    if isinstance(value, bool) or is_blank(value):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def read_bool(value: Any) -> bool | None:
    """A boolean, or one sent as `"true"`/`"false"` or 0/1; None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def read_int(value: Any) -> int | None:
    """An integer, or one sent as a string (`"293"`) or as a whole float (`293.0`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = read_float(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def read_instant(value: Any) -> datetime | None:
    """An ISO 8601 instant as an aware UTC datetime; None when empty or unparsable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:  # the C parser first: ISO 8601 with `Z` or an offset, the shape nearly all are sent in
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    except ValueError:
        pass
    try:
        return parse_instant(value.strip())
    except Exception:  # noqa: BLE001 - pendulum raises several kinds for garbage
        return None


def read_dict(value: Any) -> dict | None:
    """An object, or an object sent as a JSON string; None otherwise."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return decoded if isinstance(decoded, dict) else None
    return None


def read_list(value: Any) -> list | None:
    """A list, or a list sent as a JSON string; None otherwise."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return decoded if isinstance(decoded, list) else None
    return None


def read_text(value: Any) -> str | None:
    """Text as sent; a number or bool as its text; None for null, objects and lists."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def unreadable(value: Any, parsed: Any) -> bool:
    """True when a field carried something that its reader could not make sense of."""
    return not is_blank(value) and parsed is None


def describe(value: Any, limit: int = 60) -> str:
    """A short, printable rendering of a raw value for a problem note."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(record: Any, limit: int = 160) -> str:
    """A record's opening, to name a record that has no id."""
    try:
        text = orjson.dumps(record, default=str).decode()
    except TypeError:
        text = str(record)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Problems:
    """What was wrong with one record's fields; reported once, when the record is done."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, field: str, value: Any, read_as: Any = None) -> None:
        self.notes.append(f"{field}={describe(value)}"
                          + (f" read as {describe(read_as)}" if read_as is not None else " unreadable"))

    def check(self, field: str, value: Any, parsed: Any, *, exact: bool = False) -> Any:
        """Notes `field` when its value was unreadable, or (`exact`) repaired; returns `parsed`."""
        if unreadable(value, parsed):
            self.note(field, value)
        elif exact and parsed is not None and value is not parsed and value != parsed:
            self.note(field, value, parsed)
        return parsed

    def __bool__(self) -> bool:
        return bool(self.notes)

    def text(self) -> str:
        return "; ".join(self.notes)


def report_problems(report: RunReport, table: str, record_id: Any, problems: Problems) -> None:
    if problems:
        report.bad_record(table, record_id, problems.text(), loaded=True)


def shape_or_none(report: RunReport, table: str, record_id: Any, fn: Any, *args: Any,
                  **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`, or None (and the record named as not loaded) when the record's
    data makes it raise."""
    try:
        return fn(*args, **kwargs)
    except BAD_DATA_ERRORS as exc:
        report.bad_record(table, record_id, f"could not be read ({type(exc).__name__}: {exc})",
                          loaded=False)
        return None
