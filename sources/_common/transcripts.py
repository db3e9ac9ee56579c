"""The canonical `transcript_segments` table, shared by every source with timed transcripts.

Key (`meeting_id`, `segment_index`); written with merge strategy delete-insert and merge
key `meeting_id`, so a transcript fetched again replaces the old one whole.
Segments are yielded as Arrow tables: transcripts are the volume, and Arrow skips dlt's
row-by-row normaliser.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from .records import describe, read_float, read_instant, read_int, read_text, unreadable

if TYPE_CHECKING:
    from .report import RunReport

TABLE = "transcript_segments"
CANONICAL_SCHEMA = pa.schema([
    pa.field("meeting_id", pa.string(), nullable=False),
    pa.field("segment_index", pa.int64(), nullable=False),
    ("speaker", pa.string()),
    ("start_seconds", pa.float64()),
    ("end_seconds", pa.float64()),
    ("text", pa.string()),
])
HINTS: dict[str, Any] = {
    "primary_key": ["meeting_id", "segment_index"],
    "merge_key": "meeting_id",
    "write_disposition": "merge",
    "columns": {
        "meeting_id": {"data_type": "text", "nullable": False,
                       "description": "The id of the conversation or meeting the segment belongs to, as text."},
        "segment_index": {"data_type": "bigint", "nullable": False,
                          "description": "0-based position of the segment in the transcript, in the API's order."},
        "speaker": {"data_type": "text", "description": "Who spoke: the vendor's speaker name or label."},
        "start_seconds": {"data_type": "double",
                          "description": "Seconds from the meeting's start to the segment's start "
                                         "(for chat messages and Convo segments: the segment's instant "
                                         "minus the meeting's start instant)."},
        "end_seconds": {"data_type": "double",
                        "description": "Seconds from the meeting's start to the segment's end; null "
                                       "where the API gives no end."},
        "text": {"data_type": "text", "description": "What was said."},
    },
}


def segments_table(rows: list[dict[str, Any]], report: RunReport | None = None) -> pa.Table:
    """Builds an Arrow table of canonical segment rows (extra vendor columns allowed).

    Every column's type is fixed, never inferred from a batch: a column typed int64 in one
    load and text in the next would fail the second load (dlt adds no variant columns to
    Arrow tables). So vendor fields beyond the canonical ones are kept as text (JSON for
    objects, lists and numbers). A canonical value of the wrong type is converted value by
    value (a number sent as text is read as the number; what cannot be read is null, its
    raw text kept in `<column>__raw`, and the segment named in `report`). The context
    columns that sources add themselves (`CONTEXT_TYPES`) keep their own types.
    """
    extra = sorted({k for row in rows for k in row} - set(CANONICAL_SCHEMA.names))
    raw: dict[str, list] = {}  # typed column -> raw values that could not be read
    arrays = [_canonical_array(f, rows, report, raw) for f in CANONICAL_SCHEMA]
    fields = list(CANONICAL_SCHEMA)
    for name in extra:
        if name in CONTEXT_TYPES:
            arrays.append(_canonical_array(pa.field(name, CONTEXT_TYPES[name]), rows, report, raw))
            fields.append(pa.field(name, CONTEXT_TYPES[name]))
            continue
        values = [row.get(name) for row in rows]
        arrays.append(pa.array([None if v is None else v if isinstance(v, str)
                                else orjson.dumps(v, default=str).decode() for v in values], pa.string()))
        fields.append(pa.field(name, pa.string()))
    for name, values in raw.items():
        arrays.append(pa.array(values, pa.string()))
        fields.append(pa.field(f"{name}__raw", pa.string()))
    # with the schema, not just names: keeps the key columns non-nullable as HINTS declare them
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# columns a source adds to every segment row itself, and the vendor's instant fields of a
# segment (partner chat messages' `sent_at`, Convo's `timestamp`): their types are known, so
# they are typed columns (instants as UTC timestamps), not text
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
CONTEXT_TYPES = {"organization_id": pa.int64(), "account_id": pa.string(),
                 "sent_at": UTC_TIMESTAMP, "timestamp": UTC_TIMESTAMP}
_READERS = {pa.string(): read_text, pa.float64(): read_float, pa.int64(): read_int,
            UTC_TIMESTAMP: read_instant}


def _canonical_array(f: pa.Field, rows: list[dict[str, Any]], report: RunReport | None,
                     raw: dict[str, list]) -> pa.Array:
    """The column, converting value by value when the fast path fails; unreadable values
    are null here and kept as text in `raw[name]`."""
    values = [row.get(f.name) for row in rows]
    instants = f.type == UTC_TIMESTAMP  # sent as ISO text: parsing them is no repair
    if not instants:
        try:
            return pa.array(values, type=f.type)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
    reader = _READERS[f.type]
    out, kept = [], [None] * len(rows)
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        read = value if instants and isinstance(value, datetime) else reader(value)
        if unreadable(value, read):
            kept[i] = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        repaired = not instants and value is not None and read != value
        if report is not None and (unreadable(value, read) or repaired):
            report.bad_record(TABLE, f"{row.get('meeting_id')}#{row.get('segment_index')}",
                              f"{f.name}={describe(value)} " + (f"unreadable: null, raw kept in {f.name}__raw" if read is None
                                                                 else f"read as {describe(read)}"),
                              loaded=True)
        out.append(read)
    if any(v is not None for v in kept):
        raw[f.name] = kept
    return pa.array(out, type=f.type)
