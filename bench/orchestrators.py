"""The Airflow DAG and the Dagster definitions, each run twice against a simulator,
with what each run loaded: `python -m bench.orchestrators` (needs the [airflow] and
[dagster] extras). The same runs are asserted in tests/test_orchestrators.py."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import duckdb

from simulators.meetric_partner import MeetricPartnerSimulator

DETAIL = r"/conversations/[^/]+$"
DAG_FILE = textwrap.dedent("""
    import os
    from pipelines.airflow import make_dag

    dag = make_dag("meeting_elt_demo", sources=["meetric_partner"], schedule=None,
                   duckdb_file=os.environ["DEMO_WAREHOUSE"])

    if __name__ == "__main__":
        run = dag.test()
        for ti in sorted(run.get_task_instances(), key=lambda t: t.task_id):
            print(f"  task {ti.task_id}: {ti.state}")
        print(f"  dag run: {run.state}")
""")


def counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        names = [r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = "
                                           "'meetric_partner' and table_name not like '_dlt%'").fetchall()]
        out = {n: con.execute(f'select count(*) from meetric_partner."{n}"').fetchone()[0] for n in sorted(names)}
        out["_dlt_loads"] = con.execute("select count(*) from meetric_partner._dlt_loads").fetchone()[0]
        return out


def show(label: str, before: dict[str, int], after: dict[str, int], sim: MeetricPartnerSimulator) -> None:
    grown = {t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)}
    print(f"  {label}: {len(sim.log)} requests ({len(sim.requests('GET', DETAIL))} per-conversation); "
          f"rows added: {grown or 'none'}")


def main() -> None:
    os.environ["PROVIDERS__ENABLE_AIRFLOW_SECRETS"] = "false"
    sim = MeetricPartnerSimulator(conversations=20, seed=11, requests_per_minute=None, daily_quota=None,
                                  processing_share=0)
    sim.start()
    env = {"SOURCES__MEETRIC_PARTNER__BASE_URL": sim.base_url, "SOURCES__MEETRIC_PARTNER__API_TOKEN": sim.token,
           "SOURCES__MEETRIC_PARTNER__HTTP__REQUESTS_PER_MINUTE": "0", "RUNTIME__DLTHUB_TELEMETRY": "false"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            print("Airflow (make_dag, dag.test(), a DAG file in the dags folder):")
            warehouse = root / "airflow.duckdb"
            dags = root / "dags"
            dags.mkdir()
            (dags / "meeting_elt.py").write_text(DAG_FILE)
            run_env = {**os.environ, **env, "AIRFLOW_HOME": str(root / "airflow"), "DEMO_WAREHOUSE": str(warehouse),
                       "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                       "PYTHONPATH": os.getcwd()}
            subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=run_env, check=True,
                           capture_output=True)
            before: dict[str, int] = {}
            for n in (1, 2):
                sim.clear_log()
                out = subprocess.run([sys.executable, str(dags / "meeting_elt.py")], env=run_env, cwd=tmp,
                                     capture_output=True, text=True, check=True).stdout
                print(f" run {n}:")
                print("\n".join(line for line in out.splitlines() if line.startswith("  ")))
                after = counts(warehouse)
                show("loaded", before, after, sim)
                before = after
            print("Dagster (make_definitions, materialize):")
            from dagster import materialize
            from dagster_dlt import DagsterDltResource

            from pipelines.dagster import make_definitions

            os.environ.update(env)
            warehouse = root / "dagster.duckdb"
            defs = make_definitions(sources=["meetric_partner"], duckdb_file=str(warehouse),
                                    pipelines_dir=str(root / "p"))
            keys = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
            print(f"  assets: {', '.join(keys)}")
            before = {}
            for n in (1, 2):
                sim.clear_log()
                result = materialize(list(defs.assets), resources={"dlt": DagsterDltResource()})
                done = sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events())
                print(f" run {n}: success={result.success}, {len(done)} assets materialized")
                after = counts(warehouse)
                show("loaded", before, after, sim)
                before = after
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
