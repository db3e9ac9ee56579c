"""Table hints every source shares."""

from __future__ import annotations

from typing import Any

# Merge on the primary key with the destination's own default strategy: delete-insert on
# SQL destinations (where a merge key replaces a record's child rows whole), upsert on the
# filesystem destination's Delta tables (which take no other).
MERGE = "merge"


def deleted_at_column() -> dict[str, dict[str, Any]]:
    """A fresh `deleted_at` column hint (dlt writes into hint dicts: never share one)."""
    return {"deleted_at": {"data_type": "timestamp", "nullable": True,
                           "description": "when the vendor deleted the record (null: live)"}}
