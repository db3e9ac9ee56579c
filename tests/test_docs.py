"""`meeting-elt docs`: the committed data dictionary is what the command writes now."""

from __future__ import annotations

from pathlib import Path

from pipelines.docs import REGENERATE, generate
from pipelines.model.views import VIEWS
from pipelines.registry import SOURCES

COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "tables.md"


def test_committed_data_dictionary_is_up_to_date():
    fresh = generate()
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert committed == fresh, (
        f"docs/tables.md is stale (a schema, a description or a view changed): regenerate it with "
        f"`{REGENERATE}` and commit it")
    for view in VIEWS:
        assert f"### `meetings.{view.name}` (view)" in fresh
    for source in SOURCES:
        assert f"## {source}\n" in fresh
    assert fresh.count("```mermaid") == len(SOURCES) + 1
    assert "| `meeting_id` | text not null | primary key, merge key | The id of the conversation or meeting" in fresh
