"""`meeting-elt docs`: the data dictionary, `docs/tables.md`, from the dlt schemas.

The schemas are those of a demo load (every simulator loaded as `meeting-elt demo` does, in
a temporary folder), so every table the sources make from a realistic account is there,
with the types dlt gave its columns. Descriptions come from the schemas' `description`
hints, else from the source's `descriptions.py`; the model's from `pipelines/model/views.py`.
The output depends only on the code and the simulators' seeds: a test fails when the
committed file differs from what the command writes now.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model.views import VIEWS
from .registry import SOURCES

DEFAULT_OUTPUT = Path("docs") / "tables.md"
REGENERATE = ".venv/bin/meeting-elt docs"
DLT_COLUMNS = {  # dlt's bookkeeping columns, the same in every table that has them
    "_dlt_load_id": "The load that wrote the row (`_dlt_loads.load_id`).",
    "_dlt_id": "dlt's unique id of the row.",
    "_dlt_parent_id": "The parent row's `_dlt_id`.",
    "_dlt_root_id": "The `_dlt_id` of the top-level row this one is nested in.",
    "_dlt_list_idx": "Position in the parent's list.",
}
MODEL_TYPES = {"TEXT": "text", "BIGINT": "bigint", "DOUBLE PRECISION": "double",
               "TIMESTAMPTZ": "timestamp", "DATE": "date"}


def demo_schemas() -> dict[str, Any]:
    """{source: dlt Schema} of a demo load made in a temporary folder."""
    import dlt

    from .demo import load_demo

    with tempfile.TemporaryDirectory(prefix="meeting-elt-docs-") as root:
        destination = dlt.destinations.duckdb(str(Path(root) / "docs.duckdb"))
        loads = load_demo(destination, str(Path(root) / "pipelines"))
        failed = [f"{load.source}: {load.result.error}" for load in loads if not load.result.ok]
        if failed:
            raise RuntimeError("the demo load failed: " + "; ".join(failed))
        return {load.source: load.pipeline.default_schema.clone() for load in loads}


def generate() -> str:
    return render(demo_schemas())


def write(path: Path = DEFAULT_OUTPUT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate(), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- rendering
def _cell(text: Any) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def _descriptions(source: str) -> tuple[Mapping[str, str], Mapping[str, Mapping[str, str]]]:
    module = SOURCES[source].module
    try:
        described = importlib.import_module(f"{module}.descriptions")
    except ModuleNotFoundError:
        return {}, {}
    return described.TABLES, described.COLUMNS


def _complete_columns(table: Mapping[str, Any]) -> dict[str, dict]:
    return {n: c for n, c in table.get("columns", {}).items() if c.get("data_type")}


def _keys(name: str, column: Mapping[str, Any]) -> list[str]:
    keys = []
    if column.get("primary_key"):
        keys.append("primary key")
    if column.get("merge_key"):
        keys.append("merge key")
    if name == "_dlt_parent_id":
        keys.append("parent (`_dlt_id`)")
    if column.get("unique") and name == "_dlt_id":
        keys.append("row id")
    return keys


def _type(column: Mapping[str, Any]) -> str:
    return column["data_type"] + ("" if column.get("nullable", True) else " not null")


def _mark(name: str, column: Mapping[str, Any]) -> str:
    """PK for key columns, FK for the link to a parent row, "" otherwise (not in the diagram)."""
    if column.get("primary_key") or column.get("merge_key"):
        return "PK"
    return "FK" if name == "_dlt_parent_id" else ""


def _mermaid_entity(name: str, columns: list[tuple[str, str, str]]) -> list[str]:
    if not columns:
        return [f"    {name}"]
    lines = [f"    {name} {{"]
    lines += [f"        {type_} {column}{(' ' + mark) if mark else ''}" for column, type_, mark in columns]
    return lines + ["    }"]


def render_source(source: str, schema: Any) -> list[str]:
    tables_doc, columns_doc = _descriptions(source)
    tables = {name: t for name, t in sorted(schema.tables.items())
              if not name.startswith("_dlt") and _complete_columns(t)}
    out = [f"## {source}", "", f"Dataset `{source}` by default (`--dataset` renames it).", ""]
    out += ["```mermaid", "erDiagram"]
    parents = {t["parent"] for t in tables.values() if t.get("parent")}
    for name, table in tables.items():
        out += _mermaid_entity(name, [(c, col["data_type"], _mark(c, col))
                                      for c, col in _complete_columns(table).items()
                                      if _mark(c, col) or (c == "_dlt_id" and name in parents)])
    for name, table in tables.items():
        if table.get("parent") in tables:
            out.append(f'    {table["parent"]} ||--o{{ {name} : "_dlt_parent_id"')
    out += ["```", ""]
    for name, table in tables.items():
        out += [f"### `{source}.{name}`", ""]
        description = table.get("description") or tables_doc.get(name)
        facts = []
        if table.get("write_disposition"):
            facts.append(f"write disposition `{table['write_disposition']}`")
        if table.get("parent"):
            facts.append(f"nested in `{table['parent']}` (rows join on `_dlt_parent_id` = `{table['parent']}._dlt_id`)")
        out += [" ".join(filter(None, [description, f"({'; '.join(facts)})" if facts else ""])), ""]
        out += ["| column | type | key | description |", "|---|---|---|---|"]
        fallback = columns_doc.get(name, {})
        for column, spec in _complete_columns(table).items():
            text = spec.get("description") or fallback.get(column) or DLT_COLUMNS.get(column, "")
            out.append(f"| `{column}` | {_type(spec)} | {', '.join(_keys(column, spec))} | {_cell(text)} |")
        out.append("")
    return out


def render_model() -> list[str]:
    out = ["## The `meetings` model", "",
           "Views in dataset `meetings` over every loaded source (`pipelines/model/`); each row "
           "carries `source`. See the README's \"Reading the data\" for what each source contributes.",
           "", "```mermaid", "erDiagram"]
    for view in VIEWS:
        out += _mermaid_entity(view.name, [(c.name, MODEL_TYPES[c.type], "PK" if c.name in view.key else "")
                                           for c in view.columns if c.name in view.key])
    for view in VIEWS[1:]:
        out.append(f'    meetings ||--o{{ {view.name} : "source, meeting_id"')
    out += ["```", ""]
    for view in VIEWS:
        out += [f"### `meetings.{view.name}` (view)", "", view.description, "",
                "| column | type | key | description |", "|---|---|---|---|"]
        for c in view.columns:
            key = "primary key" if c.name in view.key else ""
            out.append(f"| `{c.name}` | {MODEL_TYPES[c.type]} | {key} | {_cell(c.description)} |")
        out.append("")
    return out


def render_dlt_tables(schema: Any) -> list[str]:
    out = ["## dlt's own tables", "",
           "In every source's dataset; dlt keeps them (`_dlt_loads` lists the loads).", ""]
    for name, table in sorted(schema.tables.items()):
        if not name.startswith("_dlt"):
            continue
        out += [f"### `{name}`", "", "| column | type |", "|---|---|"]
        out += [f"| `{c}` | {_type(spec)} |" for c, spec in _complete_columns(table).items()]
        out.append("")
    return out


def render(schemas: Mapping[str, Any]) -> str:
    out = ["# Tables and views", "",
           f"<!-- generated by `{REGENERATE}` from the dlt schemas of a demo load: do not edit -->", "",
           "Every table the sources load (as a demo load of the simulators creates them) and every "
           "view of the `meetings` model: columns, their dlt data types, keys and descriptions. "
           "Instants (`timestamp`) are UTC. Tables loaded from Arrow (`transcript_segments`, the "
           "meetric tables) have no `_dlt_load_id` / `_dlt_id`.", ""]
    out += ["Contents: [the `meetings` model](#the-meetings-model)"
            + "".join(f", [{s}](#{s})" for s in schemas) + ", [dlt's own tables](#dlts-own-tables)", ""]
    out += render_model()
    for source, schema in schemas.items():
        out += render_source(source, schema)
    if schemas:
        out += render_dlt_tables(next(iter(schemas.values())))
    return "\n".join(out).rstrip() + "\n"
