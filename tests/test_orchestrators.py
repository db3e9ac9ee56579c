"""Airflow and Dagster, run for real against a simulator: the DAG from `pipelines/airflow.py`
with Airflow's `dag.test()`, the Definitions from `pipelines/dagster.py` with `materialize`.
Each runs twice: the second run loads nothing and makes no per-conversation call."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from simulators.meetric_partner import MeetricPartnerSimulator

DETAIL = r"/conversations/[^/]+$"


@pytest.fixture
def sim(start_sim) -> MeetricPartnerSimulator:
    return start_sim(MeetricPartnerSimulator, conversations=20, seed=11, requests_per_minute=None,
                     daily_quota=None, processing_share=0)


def source_env(sim: MeetricPartnerSimulator) -> dict[str, str]:
    return {"SOURCES__MEETRIC_PARTNER__BASE_URL": sim.base_url,
            "SOURCES__MEETRIC_PARTNER__API_TOKEN": sim.token,
            "SOURCES__MEETRIC_PARTNER__HTTP__REQUESTS_PER_MINUTE": "0"}


def table_counts(path: Path, dataset: str) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = ? and table_name not like '_dlt%'",
            [dataset]).fetchall()]
        return {n: con.execute(f'select count(*) from "{dataset}"."{n}"').fetchone()[0] for n in names}


def loads(path: Path, dataset: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"select count(*) from {dataset}._dlt_loads").fetchone()[0]


# ---------------------------------------------------------------------- Airflow
# a DAG file as a user writes one; Airflow parses it from the dags folder
DAG_FILE = textwrap.dedent("""
    import os
    from pipelines.airflow import make_dag

    dag = make_dag("meeting_elt_test", sources=["meetric_partner"], schedule=None,
                   duckdb_file=os.environ["TEST_WAREHOUSE"])

    if __name__ == "__main__":
        run = dag.test()
        print("DAG_RUN_STATE", run.state)
        print("TASKS", sorted(dag.task_ids))
""")


def test_the_airflow_dag_loads_then_a_second_run_loads_nothing(sim, tmp_path):
    pytest.importorskip("airflow")
    home, dags = tmp_path / "airflow", tmp_path / "dags"
    warehouse = tmp_path / "warehouse.duckdb"
    env = {**os.environ, **source_env(sim), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "RUNTIME__DLTHUB_TELEMETRY": "false",
           "TEST_WAREHOUSE": str(warehouse)}
    dags.mkdir()
    (dags / "meeting_elt.py").write_text(DAG_FILE)
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    outputs = []
    for _ in range(2):
        run = subprocess.run([sys.executable, str(dags / "meeting_elt.py")], env=env, capture_output=True,
                             text=True, timeout=600, cwd=tmp_path)
        assert "DAG_RUN_STATE success" in run.stdout, (run.stdout + run.stderr)[-4000:]
        outputs.append(run.stdout)
        if len(outputs) == 1:
            first = table_counts(warehouse, "meetric_partner")
            first_loads = loads(warehouse, "meetric_partner")
            sim.clear_log()
    assert "'meeting_elt_meetric_partner.meeting_elt_meetric_partner'" in outputs[0]
    assert "refresh_meetings_model" in outputs[0]
    completed = [c for c in sim.visible() if c.status == "completed"]
    assert first["summaries"] == len(completed) and first["conversations"] == len(sim.visible())
    assert table_counts(warehouse, "meetric_partner") == first
    assert not sim.requests("GET", DETAIL)  # the second run restored its state: no detail call
    assert loads(warehouse, "meetric_partner") == first_loads  # nothing changed: not even a state load
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select count(*) from meetings.meetings").fetchone()[0] == len(sim.visible())


# ---------------------------------------------------------------------- Dagster
def dagster_definitions(sim, tmp_path, monkeypatch, **options):
    """The Definitions of `pipelines/dagster.py` for the simulator, into tmp_path's DuckDB file."""
    pytest.importorskip("dagster")
    from pipelines.dagster import make_definitions

    for key, value in source_env(sim).items():
        monkeypatch.setenv(key, value)
    warehouse = tmp_path / "warehouse.duckdb"
    return make_definitions(sources=["meetric_partner"], duckdb_file=str(warehouse),
                            pipelines_dir=str(tmp_path / "p"), **options), warehouse


def test_dagster_assets_materialize_then_a_second_run_loads_nothing(sim, tmp_path, monkeypatch):
    defs, warehouse = dagster_definitions(sim, tmp_path, monkeypatch)
    from dagster import materialize
    from dagster_dlt import DagsterDltResource

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"meetric_partner/conversations", "meetric_partner/transcript_segments",
            "meetric_partner/summaries", "meetings_model"} <= keys
    assert not any(k.endswith("_feed") for k in keys)  # the feeds are not tables
    assets = list(defs.assets)

    first = materialize(assets, resources={"dlt": DagsterDltResource()})
    assert first.success
    counts = table_counts(warehouse, "meetric_partner")
    completed = [c for c in sim.visible() if c.status == "completed"]
    assert counts["summaries"] == len(completed)
    sim.clear_log()
    second = materialize(assets, resources={"dlt": DagsterDltResource()})
    assert second.success
    assert table_counts(warehouse, "meetric_partner") == counts
    assert not sim.requests("GET", DETAIL)


def test_a_dagster_asset_of_one_table_materializes_alone(sim, tmp_path, monkeypatch):
    defs, warehouse = dagster_definitions(sim, tmp_path, monkeypatch, refresh_model=False)
    from dagster import AssetKey, materialize
    from dagster_dlt import DagsterDltResource

    result = materialize(list(defs.assets), resources={"dlt": DagsterDltResource()},
                         selection=[AssetKey(["meetric_partner", "transcript_segments"])])
    assert result.success
    assert set(table_counts(warehouse, "meetric_partner")) == {"transcript_segments"}
    completed = [c for c in sim.visible() if c.status == "completed"]
    assert len(sim.requests("GET", DETAIL)) == len(completed)  # one detail call each, no more
