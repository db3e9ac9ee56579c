"""Dagster: Definitions with one asset per table of every meeting-elt source (`dagster-dlt`).

    # definitions.py (or `dagster dev -m pipelines.dagster`)
    from pipelines.dagster import make_definitions
    defs = make_definitions(sources=["meetric_partner", "convo"], destination="postgres")

Each source is one multi-asset (one dlt run), with an asset per table, keyed
`[<source>, <table>]` and grouped by source: materializing `transcript_segments` alone runs
just that table (still one request per conversation). A `meetings_model` asset downstream of
them all refreshes the cross-vendor views.

Importable without credentials: the assets are described from a source built with
placeholder arguments (no request is made); the real source, with the real config from
`.dlt/` (in `project_dir`) or `SOURCES__…` env vars, is built when an asset materializes.
`dagster-dlt` wipes the pipeline's local folder before each run and dlt restores the state
from the destination, so any process can materialize any asset.

The module-level `defs` reads `MEETING_ELT_SOURCES` (comma-separated), `MEETING_ELT_DESTINATION`
(default `duckdb`), `MEETING_ELT_DUCKDB_FILE`, `MEETING_ELT_DATASET_PREFIX` and
`MEETING_ELT_PIPELINES_DIR` from the environment.
"""


import os
from collections.abc import Iterator, Sequence
from typing import Any

from dagster import AssetExecutionContext, AssetKey, Definitions, asset
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from . import registry
from .airflow import DEFAULT_PROJECT_DIR, _use_project_dir, source_factory
from .runner import make_destination, make_pipeline, run_options

# arguments that let a source describe its tables with no config at hand (never used to load)
PLACEHOLDERS: dict[str, dict[str, Any]] = {
    "meetric_partner": {"base_url": "https://placeholder.invalid", "api_token": "placeholder"},
    "meemo": {"client_id": "placeholder", "client_secret": "placeholder"},
    "meetlog": {"api_token": "placeholder"},
    "convo": {"api_key": "placeholder"},
    "meetric": {"base_url": "https://placeholder.invalid", "account_id": "placeholder",
                "api_key": "placeholder"},
}


class TableAssets(DagsterDltTranslator):
    """An asset per table, keyed [source, table], grouped by source; they depend on no
    other asset (their upstream is the vendor's API)."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> Any:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(key=AssetKey([data.resource.source_name, data.resource.name]),
                                       deps=[], group_name=data.resource.source_name)


def source_assets(name: str, *, destination: Any, dataset: str, pipelines_dir: str | None,
                  tables: Sequence[str] | None, project_dir: str) -> Any:
    """The multi-asset of one source: one dlt run, an asset per (selected) table."""
    build = source_factory(name, tables=tables, filesystem=destination == "filesystem")
    pipeline = make_pipeline(name, destination=make_destination(destination, _duckdb(destination)),
                             dataset_name=dataset, pipelines_dir=pipelines_dir)
    placeholder = registry.get(name).source()(**PLACEHOLDERS[name])
    if tables:
        placeholder = placeholder.with_resources(*tables)

    @dlt_assets(dlt_source=placeholder, dlt_pipeline=pipeline, name=f"meeting_elt_{name}",
                dagster_dlt_translator=TableAssets())
    def load(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        _use_project_dir(project_dir)
        options = {k: v for k, v in run_options(pipeline).items() if v is not None}
        yield from dlt.run(context=context, dlt_source=build(), **options)

    return load


def _duckdb(destination: str) -> str | None:
    return os.environ.get("MEETING_ELT_DUCKDB_FILE") if destination == "duckdb" else None


def make_definitions(*, sources: Sequence[str] | None = None, destination: str = "duckdb",
                     duckdb_file: str | None = None, dataset_prefix: str | None = None,
                     pipelines_dir: str | None = None, tables: dict[str, Sequence[str]] | None = None,
                     project_dir: str | None = None, refresh_model: bool = True) -> Definitions:
    """Definitions for `sources` (default: all five) loading into `destination`.

    Args:
        sources: source names; each becomes a multi-asset with an asset per table.
        destination: a dlt destination name; credentials from `.dlt/secrets.toml` or env vars.
        duckdb_file: the DuckDB file, when the destination is `duckdb`.
        dataset_prefix: load each source into `<prefix>_<source>`.
        pipelines_dir: where the (disposable) local working folders go.
        tables: {source: [tables]} to define assets for only some tables.
        project_dir: the folder whose `.dlt/` holds the config (default: this project's).
        refresh_model: add the `meetings_model` asset (not on the filesystem destination).
    """
    if duckdb_file:
        os.environ["MEETING_ELT_DUCKDB_FILE"] = duckdb_file
    project = project_dir or DEFAULT_PROJECT_DIR
    names = list(sources or registry.SOURCES)
    datasets = {n: f"{dataset_prefix}_{n}" if dataset_prefix else n for n in names}
    assets = [source_assets(n, destination=destination, dataset=datasets[n], pipelines_dir=pipelines_dir,
                            tables=(tables or {}).get(n), project_dir=project) for n in names]
    if refresh_model and destination != "filesystem":
        upstream = [key for a in assets for key in a.keys]

        @asset(name="meetings_model", deps=upstream, group_name="meetings",
               description="The cross-vendor `meetings` views over every loaded source")
        def meetings_model(context: AssetExecutionContext) -> dict[str, Any]:
            from .model import refresh_meetings_model

            _use_project_dir(project)
            done = refresh_meetings_model(make_destination(destination, _duckdb(destination)), datasets)
            context.log.info(f"meetings model: {len(done.views)} views over {sorted(done.datasets)}")
            return {"views": sorted(done.views), "datasets": done.datasets}

        assets.append(meetings_model)
    return Definitions(assets=assets, resources={"dlt": DagsterDltResource()})


def _from_env() -> dict[str, Any]:
    names = os.environ.get("MEETING_ELT_SOURCES")
    return {"sources": [n.strip() for n in names.split(",") if n.strip()] if names else None,
            "destination": os.environ.get("MEETING_ELT_DESTINATION", "duckdb"),
            "duckdb_file": os.environ.get("MEETING_ELT_DUCKDB_FILE"),
            "dataset_prefix": os.environ.get("MEETING_ELT_DATASET_PREFIX"),
            "pipelines_dir": os.environ.get("MEETING_ELT_PIPELINES_DIR")}


defs = make_definitions(**_from_env())
