"""The `meetings` dataset: one set of views over every source loaded into a destination.

    from pipelines.model import refresh_meetings_model
    refresh_meetings_model(pipeline)            # after any pipeline.run(...) of a source
    refresh_meetings_model("postgres")          # or a destination (name or dlt factory)

Views: `meetings`, `participants`, `transcript_segments`, `summaries`, `action_items`,
`topics` (`views.py`), each the union of one SELECT per source (`<source>.py`), over
whichever sources the destination holds. Views, not tables: they are always as fresh as
the loads, and a refresh only replaces their definitions (milliseconds). Refresh after a
load that may have created a table or column the views do not read yet (the CLI does it
after every run); until then the views stand in NULLs for what they miss.

How the sources' datasets are found: each dataset that holds a completed dlt load of a
source (its `_dlt_loads` table names the source's schema, which is the source's name)
belongs to that source. `datasets={source: dataset}` pins a source to a dataset. When a
source was loaded into several datasets, the one named after the source wins, else the
one loaded most recently (the others are named in `ModelRefresh.warnings`). dlt's
`<dataset>_staging` datasets have no `_dlt_loads` and are never picked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dlt.common import logger

from . import convo, meemo, meetlog, meetric, meetric_partner
from .sql import SourceMapping, branch, create_view_sql, qualifier, view_query
from .views import VIEWS, VIEWS_BY_NAME, View

MODEL_DATASET = "meetings"
MAPPINGS: dict[str, SourceMapping] = {
    m.SOURCE: SourceMapping.of(m) for m in (meetric_partner, meetric, meemo, meetlog, convo)}


@dataclass
class ModelRefresh:
    """What a refresh did: the datasets it read, which sources each view unions, how long."""

    dataset: str
    datasets: dict[str, str] = field(default_factory=dict)  # source -> dataset read
    views: dict[str, list[str]] = field(default_factory=dict)  # view -> sources in it
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


class ModelError(RuntimeError):
    """The model cannot be built in this destination (a clear message, for the CLI)."""


def refresh_meetings_model(target: Any, datasets: Mapping[str, str] | None = None, *,
                           dataset_name: str = MODEL_DATASET) -> ModelRefresh:
    """(Re)creates the views of the `meetings` dataset over the sources in a destination.

    Args:
        target: a `dlt.Pipeline` (its destination is used), a dlt destination factory
            (`dlt.destinations.duckdb("meetings.duckdb")`) or a destination name
            (`"postgres"`, credentials from `.dlt/secrets.toml`).
        datasets: `{source: dataset}` for sources loaded into a dataset not found by
            discovery, or to choose among several; unnamed sources are discovered.
        dataset_name: the dataset (schema) that holds the views.

    Returns:
        What was built. Raises `ModelError` when the destination has no SQL client (files)
        or a source's dataset is the model's own.
    """
    started = time.monotonic()
    result = ModelRefresh(dataset_name)
    with _sql_client(target, dataset_name) as client:
        dialect = client.capabilities.sqlglot_dialect or "duckdb"
        result.datasets = _find_datasets(client, dict(datasets or {}), result.warnings)
        if dataset_name in result.datasets.values():
            raise ModelError(f"the model's dataset '{dataset_name}' holds a source's tables: "
                             "load the source into another dataset, or pass another dataset_name")
        catalog = _catalog(client, set(result.datasets.values()))
        database = _rows(client, "SELECT current_database()")[0][0]
        statements = []
        for view in VIEWS:
            branches = []
            for source, dataset in sorted(result.datasets.items()):
                built = branch(view, MAPPINGS[source], dataset, catalog.get(dataset, {}),
                               qualifier(dialect, database, dataset))
                if built is not None:
                    branches.append(built)
                    result.views.setdefault(view.name, []).append(source)
            result.views.setdefault(view.name, [])
            statements.append(create_view_sql(view, dataset_name, view_query(view, branches), dialect,
                                              qualifier(dialect, database, dataset_name)))
        exists = _rows(client, "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s "
                               "AND catalog_name = current_database()", dataset_name)[0][0]
        with client.begin_transaction():
            if not exists:  # `IF NOT EXISTS` is ambiguous in a DuckDB file of the same name
                client.execute_sql(f"CREATE SCHEMA {client.capabilities.escape_identifier(dataset_name)}")
            for statement in statements:
                client.execute_sql(statement)
    result.seconds = time.monotonic() - started
    for warning in result.warnings:
        logger.warning(f"meetings model: {warning}")
    return result


def view_sql(view: str | View, datasets: Mapping[str, str], catalogs: Mapping[str, Mapping[str, set[str]]],
             dialect: str = "duckdb", dataset_name: str = MODEL_DATASET) -> str:
    """The CREATE VIEW statement for `view`, given `{source: dataset}` and each dataset's
    `{table: columns}` (no database needed: for tests and to read the generated SQL)."""
    view = VIEWS_BY_NAME[view] if isinstance(view, str) else view
    branches = [b for source, dataset in sorted(datasets.items())
                if (b := branch(view, MAPPINGS[source], dataset, catalogs.get(dataset, {}))) is not None]
    return create_view_sql(view, dataset_name, view_query(view, branches), dialect)


# ---------------------------------------------------------------------- the destination
def _sql_client(target: Any, dataset_name: str) -> Any:
    """A dlt SQL client of the target's destination, bound to the model's dataset."""
    import dlt
    from dlt.common.destination.exceptions import SqlClientNotAvailable
    from dlt.common.destination.reference import Destination
    from dlt.common.schema import Schema

    destination = target.destination if isinstance(target, dlt.Pipeline) else (
        Destination.from_reference(target) if isinstance(target, str) else target)
    if destination is None:
        raise ModelError(f"pipeline '{target.pipeline_name}' has no destination")
    if destination.destination_type.endswith(".filesystem"):
        # dlt reads files through a throwaway DuckDB: views made there would not outlive the call
        raise ModelError(_NO_SQL.format(destination.destination_name))
    if isinstance(target, dlt.Pipeline):
        try:  # the pipeline's own client knows its credentials (and its default DuckDB file)
            return target.sql_client()
        except SqlClientNotAvailable:
            raise ModelError(_NO_SQL.format(target.destination.destination_name)) from None
    config = destination.spec()
    config.dataset_name = dataset_name
    client = destination.client(Schema(dataset_name), config)
    sql_client = getattr(client, "sql_client", None)
    if sql_client is None:
        raise ModelError(_NO_SQL.format(destination.destination_name))
    return sql_client


_NO_SQL = ("the {} destination has no SQL client: the meetings model needs a SQL destination "
           "(duckdb, postgres, …)")


def _rows(client: Any, sql: str, *args: Any) -> list[tuple]:
    with client.execute_query(sql, *args) as cursor:
        return [tuple(row) for row in cursor.fetchall()]


def _find_datasets(client: Any, pinned: dict[str, str], warnings: list[str]) -> dict[str, str]:
    """{source: dataset} for every source with a completed load in this destination."""
    unknown = set(pinned) - set(MAPPINGS)
    if unknown:
        raise ModelError(f"unknown source(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(MAPPINGS))}")
    schemas = [r[0] for r in _rows(client, "SELECT table_schema FROM information_schema.tables "
                                           "WHERE table_name = '_dlt_loads' AND table_catalog = current_database()")]
    found: dict[str, list[tuple[str, Any]]] = {}
    for schema in sorted(schemas):
        qualified = f"{client.capabilities.escape_identifier(schema)}.{client.capabilities.escape_identifier('_dlt_loads')}"
        for name, last in _rows(client, f"SELECT schema_name, MAX(inserted_at) FROM {qualified} "
                                        "WHERE status = 0 GROUP BY schema_name"):
            if name in MAPPINGS:
                found.setdefault(name, []).append((schema, last))
    chosen = {}
    for source in MAPPINGS:
        if source in pinned:
            chosen[source] = pinned[source]
            continue
        candidates = found.get(source, [])
        if not candidates:
            continue
        names = [c[0] for c in candidates]
        pick = source if source in names else max(candidates, key=lambda c: c[1])[0]
        if len(candidates) > 1:
            warnings.append(f"{source} is loaded in several datasets ({', '.join(names)}); the model "
                            f"reads '{pick}' (pin another with datasets={{'{source}': …}})")
        chosen[source] = pick
    return chosen


def _catalog(client: Any, datasets: set[str]) -> dict[str, dict[str, set[str]]]:
    """{dataset: {table: columns}} as the destination has them now."""
    if not datasets:
        return {}
    marks = ", ".join(["%s"] * len(datasets))
    catalog: dict[str, dict[str, set[str]]] = {}
    for schema, table, column in _rows(
            client, "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                    f"WHERE table_catalog = current_database() AND table_schema IN ({marks})",
            *sorted(datasets)):
        catalog.setdefault(schema, {}).setdefault(table, set()).add(column)
    return catalog


__all__ = ["MAPPINGS", "MODEL_DATASET", "ModelError", "ModelRefresh", "VIEWS",
           "refresh_meetings_model", "view_sql"]
