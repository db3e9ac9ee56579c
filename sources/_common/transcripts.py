"""The canonical `transcript_segments` table, shared by every source with timed transcripts.

Key (`meeting_id`, `segment_index`); written with merge strategy delete-insert and merge
key `meeting_id`, so a transcript fetched again replaces the old one whole.
Segments are yielded as Arrow tables: transcripts are the volume, and Arrow skips dlt's
row-by-row normaliser.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

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
    "write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
    "columns": {
        "meeting_id": {"data_type": "text", "nullable": False},
        "segment_index": {"data_type": "bigint", "nullable": False},
        "speaker": {"data_type": "text"},
        "start_seconds": {"data_type": "double"},
        "end_seconds": {"data_type": "double"},
        "text": {"data_type": "text"},
    },
}


def segments_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Builds an Arrow table of canonical segment rows (extra vendor columns allowed)."""
    extra = sorted({k for row in rows for k in row} - set(CANONICAL_SCHEMA.names))
    columns = {name: [row.get(name) for row in rows] for name in CANONICAL_SCHEMA.names}
    arrays = [pa.array(columns[f.name], type=f.type) for f in CANONICAL_SCHEMA]
    names = list(CANONICAL_SCHEMA.names)
    fields = list(CANONICAL_SCHEMA)
    for name in extra:
        arrays.append(pa.array([row.get(name) for row in rows]))
        names.append(name)
        fields.append(pa.field(name, arrays[-1].type))
    # with the schema, not just names: keeps the key columns non-nullable as HINTS declare them
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
