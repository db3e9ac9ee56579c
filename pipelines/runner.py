"""Runs one source into a destination and says what happened. Used by the CLI and tests."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException

from sources._common.config import refuse_unknown_keys
from sources._common.errors import ConfigError, MeetingEltError
from sources._common.redaction import redact
from sources._common.report import RunReport, get_report, new_report

from . import registry
from .duckdb_loads import duckdb_held_open_while_loading

DEFAULT_DUCKDB_FILE = "meetings.duckdb"


@dataclass
class RunResult:
    source: str
    ok: bool
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    deleted_marked: int = 0
    report: RunReport | None = None
    busy: bool = False  # another run of the same pipeline was loading: this one did nothing
    dataset: str | None = None


class PipelineBusy(MeetingEltError):
    """Another run of the same pipeline (source, destination, dataset) is loading."""

    hint = "this run exits without loading; schedule runs so that they do not overlap"


DUCKDB_MEMORY_LIMIT_ENV = "MEETING_ELT_DUCKDB_MEMORY_LIMIT"
# DuckDB's buffer pool while a load runs (it spills to `<file>.tmp` beyond it). DuckDB's own
# default is 80% of the machine's RAM, and its cache then grows with the tables merged into:
# meetric's peak at 30,000 conversations was 533 MB without a limit, 402 MB at 128 MB, against
# 341 MB at 7,500 (2026-12-02). The connections meeting-elt opens have it (its loads, the
# `meetings` model's refresh), not yours.
DEFAULT_DUCKDB_MEMORY_LIMIT = "128MB"


def duckdb_memory_limit() -> str | None:
    """The DuckDB load memory limit: `MEETING_ELT_DUCKDB_MEMORY_LIMIT` (a DuckDB size such as
    `512MB` or `2GB`; `off`: DuckDB's default), else `DEFAULT_DUCKDB_MEMORY_LIMIT`."""
    value = os.environ.get(DUCKDB_MEMORY_LIMIT_ENV, DEFAULT_DUCKDB_MEMORY_LIMIT).strip()
    if value.lower() in ("", "off", "none", "0"):
        return None
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value, re.IGNORECASE):
        raise ConfigError(f"{DUCKDB_MEMORY_LIMIT_ENV}={value!r} is not a DuckDB memory size",
                          hint="give a size such as 512MB or 2GB, or off for DuckDB's default")
    return value


def make_destination(destination: str, duckdb_path: str | None) -> Any:
    """The destination a run loads into: a name dlt resolves from its config, or for DuckDB
    the file, loaded with `duckdb_memory_limit()`."""
    if destination == "duckdb":
        path = duckdb_path or DEFAULT_DUCKDB_FILE
        limit = duckdb_memory_limit()
        if limit is None:
            return dlt.destinations.duckdb(path)
        from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

        return dlt.destinations.duckdb(DuckDbCredentials(path, global_config={"memory_limit": limit}))
    return destination


def pipeline_name(name: str) -> str:
    """The pipeline that loads source `name` (its config may also sit under this name)."""
    return f"meeting_elt_{name}"


def destination_identity(destination: Any) -> str:
    """Where a destination writes, without secrets: its type and its DuckDB file, database
    server and name, or bucket. Two destinations never share one identity."""
    from dlt.common.destination.reference import Destination

    dest = Destination.from_reference(destination)
    try:
        config = dest.configuration(dest.spec(), accept_partial=True)
    except Exception:  # noqa: BLE001 - unresolvable config: the run itself will say why
        return dest.destination_name
    credentials = getattr(config, "credentials", None)
    parts = [dest.destination_type]
    for attr in ("drivername", "username", "host", "port", "database", "project_id", "account",
                 "warehouse"):
        value = getattr(credentials, attr, None)
        if value not in (None, ""):
            parts.append(f"{attr}={os.path.abspath(value) if attr == 'database' and 'duckdb' in dest.destination_type else value}")
    bucket = getattr(config, "bucket_url", None)
    if bucket:
        parts.append(f"bucket={bucket}")
    return "|".join(parts)


def state_dir(pipelines_dir: str | None, destination: Any, dataset: str) -> str:
    """The local folder that keeps a pipeline's working state, one per destination and
    dataset: two destinations or datasets never share a state, so switching between them
    (DuckDB, then Postgres, then DuckDB) never makes one of them skip data. The state itself
    also lives in each destination, where a fresh worker restores it from."""
    from dlt.common.pipeline import get_dlt_pipelines_dir

    base = pipelines_dir or get_dlt_pipelines_dir()
    digest = hashlib.blake2b(f"{destination_identity(destination)}|{dataset}".encode(), digest_size=5).hexdigest()
    return str(Path(base) / f"meeting_elt-{digest}")


def make_pipeline(name: str, *, destination: Any, dataset_name: str | None = None,
                  pipelines_dir: str | None = None) -> dlt.Pipeline:
    dataset = dataset_name or name
    return dlt.pipeline(pipeline_name=pipeline_name(name), destination=destination,
                        dataset_name=dataset, pipelines_dir=state_dir(pipelines_dir, destination, dataset))


def run_options(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """`pipeline.run` options for the destination: parquet where it takes it; Delta tables
    on the filesystem destination (plain files cannot be merged into)."""
    if pipeline.destination is not None and pipeline.destination.destination_name == "filesystem":
        return {"table_format": "delta"}
    return {"loader_file_format": preferred_file_format(pipeline)}


@contextlib.contextmanager
def exclusive(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Holds the pipeline's lock for one run: a second, overlapping run of the same pipeline
    raises `PipelineBusy` at once instead of loading the same data alongside it."""
    Path(pipeline.pipelines_dir).mkdir(parents=True, exist_ok=True)
    path = Path(pipeline.pipelines_dir) / f"{pipeline.pipeline_name}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise PipelineBusy(f"another run of {pipeline.pipeline_name} into dataset "
                               f"'{pipeline.dataset_name}' is loading ({holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def select_tables(source: Any, tables: Sequence[str] | None) -> Any:
    """The source with only `tables` selected; a name it does not have is a ConfigError."""
    if not tables:
        return source
    known = {name for name, r in source.resources.items() if not name.endswith("_feed")}
    unknown = sorted(set(tables) - known)
    if unknown:
        raise ConfigError(f"{source.name}: no table {', '.join(map(repr, unknown))}",
                          hint=f"its tables: {', '.join(sorted(known))}")
    return source.with_resources(*tables)


def preferred_file_format(pipeline: dlt.Pipeline) -> str | None:
    """Parquet where the destination takes it: ~10x faster than INSERT statements on DuckDB."""
    try:
        formats = pipeline.destination.capabilities().supported_loader_file_formats
    except Exception:  # noqa: BLE001 - no destination yet: let dlt choose
        return None
    if "parquet" not in formats:
        return None
    if pipeline.destination.destination_name == "postgres" and not _has_module("adbc_driver_manager"):
        return None  # dlt loads parquet into Postgres only through ADBC; else one warning per table
    return "parquet"


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def explain(exc: BaseException) -> str:
    """The most useful message in an exception chain (dlt wraps ours twice), redacted."""
    seen = exc
    while seen is not None:
        if isinstance(seen, MeetingEltError):
            return redact(str(seen))
        if isinstance(seen, ConfigFieldMissingException):
            return redact(f"missing configuration: {', '.join(seen.fields)} — set it in .dlt/secrets.toml "
                          f"or config.toml under [sources.<name>], or as SOURCES__<NAME>__<KEY>")
        if "Out of Memory Error" in str(seen):  # DuckDB's words, however dlt wraps them
            return redact(f"DuckDB ran out of memory while loading ({str(seen).splitlines()[0]}) — raise "
                          f"{DUCKDB_MEMORY_LIMIT_ENV} (now {duckdb_memory_limit() or 'DuckDB default'}), "
                          "e.g. to 1GB; the next run loads the package this one left")
        seen = seen.__cause__ or seen.__context__
    return redact(f"{type(exc).__name__}: {exc}")


@dataclass
class Loads:
    """The loads of one `run_until_done`: one per checkpoint."""

    infos: list[Any] = field(default_factory=list)  # each round's LoadInfo
    rows: dict[str, int] = field(default_factory=dict)  # rows normalized, summed over the rounds
    report: RunReport | None = None  # the rounds' reports folded into one


def run_until_done(pipeline: dlt.Pipeline, make_source: Callable[[], Any], **run_kwargs: Any) -> Loads:
    """`pipeline.run(make_source())`, again while the source's run stopped at its checkpoint
    (`checkpoint_items`) with more owed: each round is a dlt load of what it fetched, with
    the state that goes with it, so memory stays flat and a crash loses one round at most.

    For a scheduler that runs the pipeline itself (Airflow, Dagster, a script), use this in
    place of `pipeline.run(source)`; a single `pipeline.run` is correct too (the stop at the
    checkpoint is clean, not an error): its next scheduled run continues where it stopped.
    Stops early when a round settled no call (no progress: what it sent failed and waits
    for its back-off; the next scheduled run tries again). Not "fewer records owed": a
    later entity's records appear as owed only once the rounds reach it (meetlog's
    transcripts after its reports), and convo leaves every record owing its keypoints
    while the rounds fetch all transcripts first.

    Each load step into a DuckDB file holds one connection to it open
    (`duckdb_loads.duckdb_held_open_while_loading`): dlt's own connections then do not
    open and close the file again for each job."""
    with duckdb_held_open_while_loading(pipeline):
        return _rounds(pipeline, make_source, run_kwargs)


def _rounds(pipeline: dlt.Pipeline, make_source: Callable[[], Any], run_kwargs: dict[str, Any]) -> Loads:
    loads = Loads()
    leftover = None
    if pipeline.has_pending_data:
        # a package an earlier run fetched but did not finish loading (a crash, a failed
        # load): dlt would load it and skip this run's source, so it is loaded first
        loads.infos.append(pipeline.run(**run_kwargs))
        _count_rows(pipeline, loads)
        leftover = "loaded first what an earlier run fetched but did not finish loading"
    while True:
        source = make_source()
        try:
            info = pipeline.run(source, **run_kwargs)
        except Exception as exc:
            if loads.infos:  # the rounds before are loaded: the caller may count them
                exc.earlier_loads = loads  # type: ignore[attr-defined]
            raise
        loads.infos.append(info)
        _count_rows(pipeline, loads)
        report = get_report(source.name)
        settled_now = report.settled if report is not None else 0  # before the fold adds the earlier rounds'
        if report is not None and report is not loads.report:
            loads.report = report.fold(loads.report) if loads.report is not None else report
        if leftover and loads.report is not None:
            loads.report.warn(leftover)
            leftover = None
        if report is None or not report.more_to_do or not settled_now:
            return loads


def _count_rows(pipeline: dlt.Pipeline, loads: Loads) -> None:
    """Adds the rows the pipeline's last run normalized to `loads.rows`."""
    trace = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    for table, count in (trace.row_counts.items() if trace else []):
        if not table.startswith("_dlt"):
            loads.rows[table] = loads.rows.get(table, 0) + count


def run_source(name: str, *, pipeline: dlt.Pipeline | None = None, destination: Any = "duckdb",
               duckdb_path: str | None = None, dataset_name: str | None = None,
               pipelines_dir: str | None = None, tables: Sequence[str] | None = None,
               **source_kwargs: Any) -> RunResult:
    """Loads source `name` (only `tables`, when given); never raises for API or config
    errors (they land in `error`). One run of a pipeline at a time (`exclusive`)."""
    entry = registry.get(name)
    started = time.monotonic()
    new_report(name)
    try:
        if pipeline is None:
            pipeline = make_pipeline(name, destination=make_destination(destination, duckdb_path),
                                     dataset_name=dataset_name, pipelines_dir=pipelines_dir)
        with exclusive(pipeline):
            source_fn = entry.source()
            refuse_unknown_keys(name, set(inspect.signature(source_fn).parameters))
            done = run_until_done(pipeline, lambda: select_tables(source_fn(**source_kwargs), tables),
                                  **run_options(pipeline))
    except PipelineBusy as exc:
        return RunResult(name, False, time.monotonic() - started, error=explain(exc), busy=True,
                         dataset=pipeline.dataset_name if pipeline else None)
    except (MeetingEltError, ConfigError, Exception) as exc:  # noqa: BLE001 - reported to the user
        # a failed round after checkpoints: what the rounds before loaded stays, and is counted
        earlier: Loads | None = getattr(exc, "earlier_loads", None)
        report = get_report(name)
        if earlier is not None and earlier.report is not None and report is not earlier.report:
            report = report.fold(earlier.report) if report is not None else earlier.report
        return RunResult(name, False, time.monotonic() - started, rows=dict(earlier.rows) if earlier else {},
                         error=explain(exc), report=report, dataset=pipeline.dataset_name if pipeline else None)
    report = done.report or get_report(name)
    return RunResult(name, True, time.monotonic() - started, rows=done.rows,
                     deleted_marked=sum(report.marked.values()), report=report, dataset=pipeline.dataset_name)


@dataclass
class ResetPlan:
    """What `reset_source` drops: tables in the destination and paths of the source's state."""

    pipeline: dlt.Pipeline
    tables: list[str]
    state_paths: list[str]
    drop: Any  # the prepared `pipeline_drop`, run by `reset_source(..., dry_run=False)`


def plan_reset(name: str, *, destination: Any = "duckdb", duckdb_path: str | None = None,
               dataset_name: str | None = None, pipelines_dir: str | None = None,
               tables: Sequence[str] | None = None) -> ResetPlan | None:
    """Prepares dropping source `name`'s tables (all, or `tables` and their child tables)
    and the state that describes them, in the destination; None when it never loaded there.

    `tables`: each is dropped with the ledger of every entity that feeds it, so those
    entities are listed and fetched again from scratch on the next run (their other tables
    merge idempotently)."""
    from dlt.pipeline.helpers import pipeline_drop

    registry.get(name)
    pipeline = make_pipeline(name, destination=make_destination(destination, duckdb_path),
                             dataset_name=dataset_name, pipelines_dir=pipelines_dir)
    pipeline.sync_destination()  # a fresh worker: the state and schema come from the destination
    if not pipeline.default_schema_name:
        return None
    if not tables:
        drop = pipeline_drop(pipeline, drop_all=True, state_paths="*")
        return ResetPlan(pipeline, sorted(drop.info["tables"]), ["*"], drop)
    schema_tables = set(pipeline.default_schema.data_table_names())
    unknown = sorted(set(tables) - schema_tables)
    if unknown:
        raise ConfigError(f"{name}: no table {', '.join(map(repr, unknown))} in dataset "
                          f"'{pipeline.dataset_name}'", hint=f"its tables: {', '.join(sorted(schema_tables))}")
    ledger = pipeline.state.get("sources", {}).get(name, {}).get("ledger", {})
    paths = sorted({f"ledger.{entity}" for entity, book in ledger.items()
                    if isinstance(book, dict) and set(book.get("tables") or []) & set(tables)})
    paths += [f"ledger._marks.{t}" for t in tables if t in ledger.get("_marks", {})]
    drop = pipeline_drop(pipeline, resources=list(tables), state_paths=paths)
    return ResetPlan(pipeline, sorted(drop.info["tables"]), paths, drop)


def reset_source(plan: ResetPlan) -> None:
    """Runs a prepared reset, holding the pipeline's lock."""
    with exclusive(plan.pipeline):
        plan.drop()
