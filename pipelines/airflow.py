"""Airflow: a DAG of meeting-elt sources on dlt's `PipelineTasksGroup`, one task group each.

    # dags/meeting_elt.py
    from pipelines.airflow import make_dag
    dag = make_dag(sources=["meetric_partner", "convo"], schedule="@hourly",
                   destination="postgres")

What it takes care of (the gotchas of wiring dlt into Airflow by hand):
- Importable without credentials: each source is built inside its task, when it runs, so
  the scheduler parsing the DAG file needs no config and makes no request.
- `.dlt/` is looked up in `project_dir` (default: the folder that holds this project's
  `.dlt/`), not only in the dags folder, which `PipelineTasksGroup` points dlt at.
- Every task gets a fresh working folder (`PipelineTasksGroup`): the state is restored from
  the destination at the start of each run, so any worker can run any task.
- One run of the DAG at a time (`max_active_runs=1`): two overlapping runs of a source
  would load the same data side by side.
- The `meetings` model is refreshed by a last task, after every source's group.
- Tables are Delta tables on the filesystem destination (plain files cannot be merged).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dlt.common.known_env import DLT_DATA_DIR, DLT_PROJECT_DIR

from . import registry
from .runner import make_destination, make_pipeline, preferred_file_format, select_tables

DEFAULT_PROJECT_DIR = str(Path(__file__).resolve().parents[1])  # the folder with `.dlt/`


def _dag_class() -> Any:
    try:
        from airflow.sdk import DAG  # Airflow 3
    except ImportError:  # pragma: no cover - Airflow 2
        from airflow import DAG
    return DAG


def source_factory(name: str, *, tables: Sequence[str] | None = None,
                   filesystem: bool = False) -> Callable[[], Any]:
    """A callable that builds source `name` when the task runs (config resolved then)."""

    def build() -> Any:
        source = select_tables(registry.get(name).source()(), tables)
        if filesystem:
            for resource in source.resources.values():
                resource.apply_hints(table_format="delta")
        return source

    build.__name__ = f"{name}_source"
    return build


def _use_project_dir(project_dir: str) -> None:
    """Points dlt's config lookup at `project_dir/.dlt` (PipelineTasksGroup set the dags folder)."""
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    os.environ[DLT_PROJECT_DIR] = project_dir
    if PluggableRunContext in Container():
        Container()[PluggableRunContext].reload_providers()


def make_dag(dag_id: str = "meeting_elt", *, sources: Sequence[str] | None = None,
             schedule: str | timedelta | None = "@hourly", destination: str = "duckdb",
             duckdb_file: str | None = None, dataset_prefix: str | None = None,
             tables: dict[str, Sequence[str]] | None = None, project_dir: str | None = None,
             start_date: datetime | None = None, refresh_model: bool = True,
             task_retries: int = 0, **dag_kwargs: Any) -> Any:
    """A DAG that loads `sources` (default: all five) into `destination`.

    Args:
        dag_id: the DAG's id.
        sources: source names (`meeting-elt` names); each gets a task group.
        schedule: an Airflow schedule (cron string, preset or timedelta); None: manual only.
        destination: a dlt destination name; credentials from `.dlt/secrets.toml` or env vars.
        duckdb_file: the DuckDB file, when the destination is `duckdb` (use an absolute path).
        dataset_prefix: load each source into `<prefix>_<source>` instead of `<source>`.
        tables: {source: [tables]} to load only some tables of a source.
        project_dir: the folder whose `.dlt/` holds the config (default: this project's).
        start_date: the DAG's start date (default: 2026-01-01).
        refresh_model: add a last task that refreshes the `meetings` views.
        task_retries: Airflow retries per task (a source that stopped cleanly at a quota
            succeeds and is not retried; one that failed is).
        **dag_kwargs: passed to `DAG` (tags, owner, default_args, …).
    """
    from dlt.helpers.airflow_helper import PipelineTasksGroup

    try:
        from airflow.providers.standard.operators.python import PythonOperator
    except ImportError:  # pragma: no cover - Airflow 2
        from airflow.operators.python import PythonOperator

    dag_class = _dag_class()
    names = list(sources or registry.SOURCES)
    for name in names:
        registry.get(name)  # an unknown name fails at parse time, with the known ones
    project = project_dir or DEFAULT_PROJECT_DIR
    dag_kwargs.setdefault("max_active_runs", 1)
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("default_args", {"retries": task_retries})
    dag = dag_class(dag_id, schedule=schedule, start_date=start_date or datetime(2026, 1, 1), **dag_kwargs)
    datasets: dict[str, str] = {}
    groups = []
    with dag:
        for name in names:
            group = PipelineTasksGroup(f"meeting_elt_{name}", use_data_folder=False, wipe_local_data=True,
                                       use_task_logger=True)
            _use_project_dir(project)
            target = make_destination(destination, duckdb_file)
            datasets[name] = f"{dataset_prefix}_{name}" if dataset_prefix else name
            # created after its group: the group gave this worker a fresh data folder
            pipeline = make_pipeline(name, destination=target, dataset_name=datasets[name],
                                     pipelines_dir=os.environ[DLT_DATA_DIR])
            group.add_run(pipeline, source_factory(name, tables=(tables or {}).get(name),
                                                   filesystem=destination == "filesystem"),
                          decompose="none", loader_file_format=preferred_file_format(pipeline))
            groups.append(group)
        if refresh_model and destination != "filesystem":
            refresh = PythonOperator(task_id="refresh_meetings_model",
                                     python_callable=_refresh(destination, duckdb_file, datasets, project))
            for group in groups:
                group >> refresh
    return dag


def _refresh(destination: str, duckdb_file: str | None, datasets: dict[str, str],
             project: str) -> Callable[[], dict[str, Any]]:
    def refresh() -> dict[str, Any]:
        from .model import refresh_meetings_model

        _use_project_dir(project)
        done = refresh_meetings_model(make_destination(destination, duckdb_file), datasets)
        return {"views": sorted(done.views), "datasets": done.datasets, "seconds": round(done.seconds, 3)}

    return refresh
