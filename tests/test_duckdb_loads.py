"""`run_until_done` holds one DuckDB connection open while each load step runs (so dlt's
connections do not open the file again for each job), and only then: the file is free while
a source fetches, after the run, and after a load that failed."""

from __future__ import annotations

import subprocess
import sys

import dlt
import duckdb
import pytest
from dlt.pipeline import trace

import pipelines.duckdb_loads as duckdb_loads
from pipelines.runner import make_destination, run_until_done

OPENS_IN_ANOTHER_PROCESS = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"


def free_for_another_process(path: str) -> bool:
    """Another process can open the file read-write: no connection of this one holds it."""
    return subprocess.run([sys.executable, "-c", OPENS_IN_ANOTHER_PROCESS, path],
                          capture_output=True, timeout=60).returncode == 0


@pytest.fixture
def held(monkeypatch):
    """Every connection the hold opens, with whether the file was held when it was opened."""
    opened: list[object] = []
    original = duckdb_loads.open_like_dlt

    def spy(pipeline):
        conn = original(pipeline)
        opened.append(conn)
        return conn

    monkeypatch.setattr(duckdb_loads, "open_like_dlt", spy)
    return opened


def rows_source(free_while_fetching: list[bool], path: str, count: int = 2000):
    @dlt.resource(name="rows", primary_key="id", write_disposition="merge")
    def rows():
        free_while_fetching.append(free_for_another_process(path))
        yield [{"id": i, "text": f"row {i} " * 20} for i in range(count)]

    @dlt.source(name="rows_source")
    def source():
        return rows

    return source()


def test_each_load_step_holds_the_file_open_and_it_is_free_while_fetching_and_after(tmp_path, held):
    path = str(tmp_path / "held.duckdb")
    pipeline = dlt.pipeline(pipeline_name="held", pipelines_dir=str(tmp_path / "p"), dataset_name="d",
                            destination=make_destination("duckdb", path))
    free_while_fetching: list[bool] = []
    for _ in range(2):  # the second run fetches while the file exists and has been loaded into
        loads = run_until_done(pipeline, lambda: rows_source(free_while_fetching, path),
                               loader_file_format="parquet")
        assert loads.rows["rows"] == 2000
    assert free_while_fetching == [True, True]
    assert len(held) == 2 and all(isinstance(conn, duckdb.DuckDBPyConnection) for conn in held)
    assert all(_closed(conn) for conn in held)
    assert not any(isinstance(m, duckdb_loads.HoldDuckDbWhileLoading) for m in trace.TRACKING_MODULES)
    assert free_for_another_process(path)
    with duckdb.connect(path) as conn:
        assert conn.execute("select count(*), count(distinct id) from d.rows").fetchone() == (2000, 2000)


def test_a_load_that_fails_leaves_the_file_free(tmp_path, held, monkeypatch):
    monkeypatch.setenv("MEETING_ELT_DUCKDB_MEMORY_LIMIT", "1MB")  # the load runs out of memory
    path = str(tmp_path / "starved.duckdb")
    pipeline = dlt.pipeline(pipeline_name="starved", pipelines_dir=str(tmp_path / "p"), dataset_name="d",
                            destination=make_destination("duckdb", path))
    with pytest.raises(Exception, match="(?i)out of memory"):
        run_until_done(pipeline, lambda: rows_source([], path, count=50_000), loader_file_format="parquet")
    assert len(held) == 1 and _closed(held[0])
    assert free_for_another_process(path)


def test_nothing_is_held_for_a_connection_the_user_passed_or_another_destination(tmp_path, held):
    path = str(tmp_path / "theirs.duckdb")
    with duckdb.connect(path) as theirs:
        pipeline = dlt.pipeline(pipeline_name="theirs", pipelines_dir=str(tmp_path / "p"), dataset_name="d",
                                destination=dlt.destinations.duckdb(theirs))
        run_until_done(pipeline, lambda: rows_source([], path, count=10), loader_file_format="parquet")
        assert theirs.execute("select count(*) from d.rows").fetchone() == (10,)
    files = dlt.pipeline(pipeline_name="files", pipelines_dir=str(tmp_path / "p"), dataset_name="d",
                         destination=dlt.destinations.filesystem(str(tmp_path / "lake")))
    run_until_done(files, lambda: rows_source([], path, count=10), loader_file_format="parquet")
    assert held == [None, None]


def _closed(conn: duckdb.DuckDBPyConnection) -> bool:
    try:
        conn.execute("select 1")
    except duckdb.ConnectionException:
        return True
    return False
