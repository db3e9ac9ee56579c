"""Runs one source into a destination and says what happened. Used by the CLI and tests."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException

from sources._common.config import refuse_unknown_keys
from sources._common.errors import ConfigError, MeetingEltError
from sources._common.redaction import redact
from sources._common.report import RunReport, get_report, new_report
from sources._common.state import apply_deletions

from . import registry

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


def make_destination(destination: str, duckdb_path: str | None) -> Any:
    if destination == "duckdb":
        return dlt.destinations.duckdb(duckdb_path or DEFAULT_DUCKDB_FILE)
    return destination


def pipeline_name(name: str) -> str:
    """The pipeline that loads source `name` (its config may also sit under this name)."""
    return f"meeting_elt_{name}"


def make_pipeline(name: str, *, destination: Any, dataset_name: str | None = None,
                  pipelines_dir: str | None = None) -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name=pipeline_name(name), destination=destination,
                        dataset_name=dataset_name or name, pipelines_dir=pipelines_dir,
                        )


def preferred_file_format(pipeline: dlt.Pipeline) -> str | None:
    """Parquet where the destination takes it: ~10x faster than INSERT statements on DuckDB."""
    try:
        formats = pipeline.destination.capabilities().supported_loader_file_formats
    except Exception:  # noqa: BLE001 - no destination yet: let dlt choose
        return None
    return "parquet" if "parquet" in formats else None


def explain(exc: BaseException) -> str:
    """The most useful message in an exception chain (dlt wraps ours twice), redacted."""
    seen = exc
    while seen is not None:
        if isinstance(seen, MeetingEltError):
            return redact(str(seen))
        if isinstance(seen, ConfigFieldMissingException):
            return redact(f"missing configuration: {', '.join(seen.fields)} — set it in .dlt/secrets.toml "
                          f"or config.toml under [sources.<name>], or as SOURCES__<NAME>__<KEY>")
        seen = seen.__cause__ or seen.__context__
    return redact(f"{type(exc).__name__}: {exc}")


def run_source(name: str, *, pipeline: dlt.Pipeline | None = None, destination: Any = "duckdb",
               duckdb_path: str | None = None, dataset_name: str | None = None,
               pipelines_dir: str | None = None, **source_kwargs: Any) -> RunResult:
    """Loads source `name`; never raises for API or config errors (they land in `error`)."""
    entry = registry.get(name)
    started = time.monotonic()
    new_report(name)
    try:
        if pipeline is None:
            pipeline = make_pipeline(name, destination=make_destination(destination, duckdb_path),
                                     dataset_name=dataset_name, pipelines_dir=pipelines_dir)
        source_fn = entry.source()
        refuse_unknown_keys(name, set(inspect.signature(source_fn).parameters))
        source = source_fn(**source_kwargs)
        pipeline.run(source, loader_file_format=preferred_file_format(pipeline))
        marked = apply_deletions(pipeline, name)
    except (MeetingEltError, ConfigError, Exception) as exc:  # noqa: BLE001 - reported to the user
        return RunResult(name, False, time.monotonic() - started, error=explain(exc),
                         report=get_report(name))
    info = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    rows = {t: n for t, n in (info.row_counts.items() if info else []) if not t.startswith("_dlt")}
    return RunResult(name, True, time.monotonic() - started, rows=rows, deleted_marked=marked,
                     report=get_report(name))
