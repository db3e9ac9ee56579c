"""One DuckDB connection held open while a load step runs.

dlt's DuckDB connection pool opens the database file when a client or a job borrows the
first connection and closes it when the last one is returned, and a load borrows and
returns many times (the client that creates the tables, each job, the merge, the state):
each time it opens the file again (~25 ms: the file, its WAL, the settings) and closes it
(~10 ms, a checkpoint). DuckDB keeps one database instance per file in a process while a
connection to it is open, so with one of ours held for the load step, every connection dlt
opens is a new connection to the instance already open: meetlog's two load steps at 1,200
transcripts take 0.18 + 0.13 s instead of 0.24 + 0.18 s (README, Performance).

The connection is held only while dlt's `load` step runs, so the file is free during the
fetch as before (another process may read it between loads). It is dlt's own way of
watching a run's steps (`dlt.pipeline.trace.TRACKING_MODULES`, the `SupportsTracking`
protocol); an error in it is logged by dlt and does not fail the load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dlt

# the keys of `global_config` that dlt's pool passes to `duckdb.connect` (the rest it SETs):
# a connection to an open instance must be made with the same ones, or DuckDB refuses it
CONNECT_CONFIG_KEYS = ("custom_user_agent",)


class HoldDuckDbWhileLoading:
    """A dlt tracking module for one pipeline: opens a connection to its DuckDB file when
    its load step starts, closes it when the step ends (or the run's trace does)."""

    def __init__(self, pipeline: dlt.Pipeline) -> None:
        self.pipeline = pipeline
        self.conn: Any = None

    def on_start_trace(self, trace: Any, step: Any, pipeline: Any) -> None:
        pass

    def on_start_trace_step(self, trace: Any, step: Any, pipeline: Any) -> None:
        if step == "load" and pipeline is self.pipeline and self.conn is None:
            self.conn = open_like_dlt(pipeline)

    def on_end_trace_step(self, trace: Any, step: Any, pipeline: Any, step_info: Any, send_state: bool) -> None:
        if getattr(step, "step", None) == "load" and pipeline is self.pipeline:
            self.close()

    def on_end_trace(self, trace: Any, pipeline: Any, send_state: bool) -> None:
        if pipeline is self.pipeline:
            self.close()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


def open_like_dlt(pipeline: dlt.Pipeline) -> Any:
    """A connection to the DuckDB file `pipeline` loads into, opened as dlt's pool opens it;
    None when its destination is not a DuckDB file dlt opens itself (another destination,
    a connection the user passed in, MotherDuck)."""
    destination = pipeline.destination
    if destination is None or destination.destination_name != "duckdb":
        return None
    credentials = pipeline.destination_client().config.credentials
    database = getattr(credentials, "database", None)
    if getattr(credentials, "_external_conn", None) is not None or not isinstance(database, str):
        return None
    if database.startswith(("md:", "motherduck:")) or database == ":memory:":
        return None
    import duckdb

    connect_config = {key: value for key, value in (credentials.global_config or {}).items()
                      if key in CONNECT_CONFIG_KEYS}
    return duckdb.connect(database, read_only=bool(credentials.read_only), config=connect_config)


@contextlib.contextmanager
def duckdb_held_open_while_loading(pipeline: dlt.Pipeline) -> Iterator[HoldDuckDbWhileLoading]:
    """While the block runs, each load step of `pipeline` holds one DuckDB connection open."""
    from dlt.pipeline import trace

    hold = HoldDuckDbWhileLoading(pipeline)
    trace.TRACKING_MODULES.append(hold)
    try:
        yield hold
    finally:
        with contextlib.suppress(ValueError):
            trace.TRACKING_MODULES.remove(hold)
        hold.close()
