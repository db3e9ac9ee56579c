"""`meeting-elt`: run, demo and check. The CLI owns the terminal; sources only log.

click parses arguments (well kept, already a dlt dependency); rich draws progress and the
summary tables (only when stdout is a terminal; plain lines otherwise, for cron logs).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sources._common.config import refuse_unknown_keys
from sources._common.errors import MeetingEltError
from sources._common.report import get_report, log_notes

from . import registry
from .runner import (
    DEFAULT_DUCKDB_FILE,
    RunResult,
    duckdb_memory_limit,
    explain,
    make_destination,
    pipeline_name,
    run_source,
)

console = Console(highlight=False, soft_wrap=True)
errors = Console(highlight=False, soft_wrap=True, stderr=True)  # with --json, stdout is the JSON alone
# 75 (EX_TEMPFAIL): another run of the pipeline was loading; try again later
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 75


@contextmanager
def progress(name: str):
    """A live line with the request count while a source runs (terminals only)."""
    if not console.is_terminal:
        console.print(f"{name}: loading…")
        yield
        return
    stop = threading.Event()
    started = time.monotonic()
    with console.status(f"{name}: starting…") as status:
        def tick() -> None:
            while not stop.wait(0.25):
                report = get_report(name)
                done = report.requests if report else 0
                status.update(f"{name}: {done} requests, {time.monotonic() - started:.0f}s")

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def print_summary(result: RunResult) -> None:
    """Tables and rows, requests, what was skipped and why, what waits for the next run."""
    report = result.report
    state = "[green]ok[/]" if result.ok else "[red]FAILED[/]"
    console.print(f"\n[bold]{result.source}[/] {state} in {result.seconds:.1f}s"
                  + (f", {report.requests} requests ({report.retries} retried)" if report else ""))
    if result.error:
        console.print(f"  [red]error:[/] {escape(result.error)}")
    if result.rows:
        table = Table("table", "rows loaded", box=None, padding=(0, 2))
        for name, rows in sorted(result.rows.items()):
            table.add_row(name, str(rows))
        console.print(table)
    elif result.ok:
        console.print("  nothing new to load")
    if result.deleted_marked:
        per_table = ", ".join(f"{t} {n}" for t, n in sorted(result.report.marked.items()))
        console.print(f"  marked deleted: {result.deleted_marked} rows (deleted_at): {per_table}")
    if report:
        for table_name, why in sorted(report.skipped.items()):
            console.print(f"  [yellow]skipped[/] {table_name}: {escape(why)}")
        for what, note in report.waiting.items():
            console.print(f"  [cyan]next run[/] {what}: {escape(note)}")
        for warning in report.warnings:
            console.print(f"  [yellow]warning[/] {escape(warning)}")
        print_bad_records(report)


BAD_RECORDS_SHOWN = 10  # per table; the rest are counted


def print_bad_records(report: Any) -> None:
    """Malformed records by table and id: loaded as sent (raw values kept) or left out."""
    by_table: dict[str, list] = {}
    for bad in report.bad_records:
        by_table.setdefault(bad.table, []).append(bad)
    for table_name, bads in sorted(by_table.items()):
        left_out = sum(1 for b in bads if not b.loaded)
        console.print(f"  [yellow]bad records[/] {table_name}: {len(bads)} "
                      f"({len(bads) - left_out} loaded as sent, {left_out} not loaded)")
        for bad in bads[:BAD_RECORDS_SHOWN]:
            what = "loaded" if bad.loaded else "[red]not loaded[/]"
            console.print(f"    {escape(bad.record_id)} ({what}): {escape(bad.problem)}")
        if len(bads) > BAD_RECORDS_SHOWN:
            console.print(f"    … and {len(bads) - BAD_RECORDS_SHOWN} more")


@click.group()
@click.version_option(package_name="meeting-elt")
def main() -> None:
    """Load meeting-intelligence APIs into DuckDB or any dlt destination."""
    log_notes(False)  # the summary prints every note: dlt's log lines would repeat them
    # the CLI never runs inside an Airflow task: where Airflow is installed beside it, dlt
    # would otherwise query Airflow's Variables for every config value (seconds per run)
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")


def _destination_options(fn: Any) -> Any:
    fn = click.option("--destination", default="duckdb", show_default=True,
                      help="any dlt destination name (credentials from .dlt/secrets.toml)")(fn)
    fn = click.option("--duckdb-file", default=DEFAULT_DUCKDB_FILE, show_default=True,
                      help="the DuckDB file, when the destination is duckdb")(fn)
    fn = click.option("--pipelines-dir", default=None, help="where dlt keeps pipeline state")(fn)
    return fn


def _tables_option(value: str | None) -> list[str] | None:
    return [t.strip() for t in value.split(",") if t.strip()] if value else None


def result_json(result: RunResult) -> dict[str, Any]:
    """One source's run, for schedulers (`--json`): what the summary prints, as data."""
    report = result.report
    return {
        "source": result.source, "ok": result.ok, "busy": result.busy, "dataset": result.dataset,
        "seconds": round(result.seconds, 3), "error": result.error, "rows": result.rows,
        "requests": report.requests if report else 0, "retries": report.retries if report else 0,
        "skipped": dict(report.skipped) if report else {},
        "waiting": dict(report.waiting) if report else {},
        "warnings": list(report.warnings) if report else [],
        "marked_deleted": dict(report.marked) if report else {},
        "bad_records": [{"table": b.table, "id": b.record_id, "problem": b.problem, "loaded": b.loaded}
                        for b in report.bad_records] if report else [],
    }


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--dataset", default=None, help="dataset name (default: the source's name; one source only)")
@click.option("--dataset-prefix", default=None,
              help="with several sources: load each into dataset <prefix>_<source>")
@click.option("--tables", default=None, help="comma-separated tables to load (default: all)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON summary on stdout, for schedulers")
@_destination_options
def run(sources: tuple[str, ...], dataset: str | None, dataset_prefix: str | None, tables: str | None,
        as_json: bool, destination: str, duckdb_file: str, pipelines_dir: str | None) -> None:
    """Load SOURCES (e.g. meetric_partner convo) incrementally.

    Exit codes: 0 loaded (a clean stop on a spent quota included), 1 a source failed,
    2 wrong usage, 75 another run of the same pipeline was loading (nothing done)."""
    for name in sources:
        if name not in registry.SOURCES:
            raise click.UsageError(f"unknown source '{name}'; known: {', '.join(sorted(registry.SOURCES))}")
    if dataset and len(sources) > 1:
        raise click.UsageError("--dataset names one dataset, for one source; with several sources use "
                               "--dataset-prefix (each source loads into <prefix>_<source>)")
    if dataset and dataset_prefix:
        raise click.UsageError("--dataset and --dataset-prefix exclude each other")
    if tables and len(sources) > 1:
        raise click.UsageError("--tables selects tables of one source; run the sources one at a time")
    datasets = {name: dataset or (f"{dataset_prefix}_{name}" if dataset_prefix else name) for name in sources}
    if destination == "duckdb":
        try:
            duckdb_memory_limit()
        except MeetingEltError as exc:  # a setting every source would fail on: said once
            errors.print(f"[red]error:[/] {escape(explain(exc))}")
            sys.exit(EXIT_FAILED)
    quiet = as_json
    results = []
    for name in sources:
        if quiet:
            result = run_source(name, destination=destination, duckdb_path=duckdb_file,
                                dataset_name=datasets[name], pipelines_dir=pipelines_dir,
                                tables=_tables_option(tables))
        else:
            with progress(name):
                result = run_source(name, destination=destination, duckdb_path=duckdb_file,
                                    dataset_name=datasets[name], pipelines_dir=pipelines_dir,
                                    tables=_tables_option(tables))
            print_summary(result)
        results.append(result)
    loaded = {r.source: r.dataset or datasets[r.source] for r in results if r.ok}
    model_ok = refresh_model(make_destination(destination, duckdb_file), loaded or None, quiet=quiet)
    failed = any(not r.ok and not r.busy for r in results) or not model_ok
    if as_json:
        click.echo(json.dumps({"ok": not failed and not any(r.busy for r in results),
                               "sources": [result_json(r) for r in results]}, default=str))
    sys.exit(EXIT_FAILED if failed else EXIT_BUSY if any(r.busy for r in results) else EXIT_OK)


@main.command()
@click.argument("source")
@click.option("--tables", default=None, help="comma-separated tables to drop (default: all of the source's)")
@click.option("--dataset", default=None, help="dataset name (default: the source's name)")
@click.option("--yes", is_flag=True, help="do not ask")
@_destination_options
def reset(source: str, tables: str | None, dataset: str | None, yes: bool, destination: str,
          duckdb_file: str, pipelines_dir: str | None) -> None:
    """Drop SOURCE's tables and state in the destination, so the next run loads it afresh."""
    from .runner import plan_reset, reset_source

    if source not in registry.SOURCES:
        raise click.UsageError(f"unknown source '{source}'; known: {', '.join(sorted(registry.SOURCES))}")
    try:
        plan = plan_reset(source, destination=destination, duckdb_path=duckdb_file, dataset_name=dataset,
                          pipelines_dir=pipelines_dir, tables=_tables_option(tables))
    except Exception as exc:  # noqa: BLE001 - shown to the user
        console.print(f"[red]{source}: reset failed:[/] {escape(explain(exc))}")
        sys.exit(EXIT_FAILED)
    if plan is None:
        console.print(f"{source}: nothing to reset: it was never loaded into this destination and dataset")
        sys.exit(EXIT_OK)
    what = "all of its state" if plan.state_paths == ["*"] else \
        (f"the state of {', '.join(p.split('.', 1)[1] for p in plan.state_paths)}" if plan.state_paths else "no state")
    console.print(f"{source}: drops {len(plan.tables)} tables in dataset '{plan.pipeline.dataset_name}' "
                  f"({', '.join(plan.tables) or 'none'}) and {what}")
    if not yes:
        if not sys.stdin.isatty():
            console.print("[red]not confirmed:[/] add --yes to reset without a question")
            sys.exit(EXIT_USAGE)
        click.confirm("drop them?", abort=True)
    try:
        reset_source(plan)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        console.print(f"[red]{source}: reset failed:[/] {escape(explain(exc))}")
        sys.exit(EXIT_BUSY if "is loading" in str(exc) else EXIT_FAILED)
    console.print(f"{source}: reset; the next run loads it afresh")


def refresh_model(destination: Any, datasets: dict[str, str] | None = None, *, quiet: bool = False) -> bool:
    """Refreshes the `meetings` views after the loads and says so; False when that failed.

    A destination without SQL (files) has no views: a note, not a failure."""
    from .model import ModelError, refresh_meetings_model

    say = (lambda *a, **k: None) if quiet else console.print
    try:
        done = refresh_meetings_model(destination, datasets)
    except ModelError as exc:
        say(f"\n[yellow]meetings model not built:[/] {escape(str(exc))}")
        return True
    except Exception as exc:  # noqa: BLE001 - shown to the user
        (errors if quiet else console).print(f"\n[red]meetings model: refresh failed:[/] {escape(explain(exc))}")
        return False
    over = ", ".join(f"{s} ({d})" if s != d else s for s, d in sorted(done.datasets.items())) or "no source yet"
    say(f"\n[bold]meetings model[/] refreshed in {done.seconds:.2f}s: "
                  f"{len(done.views)} views in dataset '{done.dataset}' over {over}")
    for warning in done.warnings:
        say(f"  [yellow]warning[/] {escape(warning)}")
    return True


@main.command()
@click.option("--duckdb-file", default="demo.duckdb", show_default=True)
@click.option("--pipelines-dir", default=None, help="where dlt keeps pipeline state")
@click.option("--sources", "only", default=None, help="comma-separated subset of sources")
def demo(duckdb_file: str, pipelines_dir: str | None, only: str | None) -> None:
    """Start every simulator on loopback and load them all into DUCKDB_FILE."""
    import shutil

    import duckdb

    from .demo import load_demo

    names = only.split(",") if only else list(registry.SOURCES)
    pipelines_dir = pipelines_dir or str(Path(duckdb_file).resolve().parent / ".demo_pipelines")
    # the demo always starts from scratch, so that running it twice shows the same tables
    shutil.rmtree(pipelines_dir, ignore_errors=True)
    Path(duckdb_file).unlink(missing_ok=True)
    failed = False
    destination = make_destination("duckdb", duckdb_file)
    for load in load_demo(destination, pipelines_dir, names, wrap=progress):
        print_summary(load.result)
        failed |= not load.result.ok
    failed |= not refresh_model(destination)
    with duckdb.connect(duckdb_file, read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name, estimated_size from duckdb_tables() "
            "where table_name not like '_dlt%' order by 1, 2").fetchall()
    console.print(f"\n[bold]{len(tables)} tables in {duckdb_file}[/] — look at them with:")
    console.print(f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{duckdb_file}')"
                  ".sql('select source, title, status, started_at from meetings.meetings "
                  "order by started_at desc limit 5'))\"")
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


@main.command()
@click.option("--output", default="docs/tables.md", show_default=True, help="where to write it")
def docs(output: str) -> None:
    """Write the data dictionary (every table and view, column, type, key, description)."""
    from .docs import write

    with progress("docs (a demo load in a temporary folder)"):
        path = write(Path(output))
    console.print(f"wrote {path}")


def resolve_source_config(source: str) -> dict[str, Any]:
    """SOURCE's configuration resolved exactly as `run` resolves it for the source itself.

    The source's own config spec (so its own type hints: secrets, optional keys, nested
    `http`), in its own sections (`sources.<section>.<name>`), under the pipeline name `run`
    uses (so `[meeting_elt_<name>.sources.<name>]` counts too), and mistyped keys refused the
    same way. Raises what `run` would raise for the same configuration.
    """
    from dlt.common.configuration import known_sections
    from dlt.common.configuration.resolve import inject_section, resolve_configuration
    from dlt.common.configuration.specs.config_section_context import ConfigSectionContext

    source_fn = registry.get(source).source()
    refuse_unknown_keys(source, set(inspect.signature(source_fn).parameters))
    ref = source_fn.ref
    sections = (known_sections.SOURCES, ref.section, ref.name)
    with inject_section(ConfigSectionContext(pipeline_name=pipeline_name(source), sections=sections)):
        return dict(resolve_configuration(ref.SPEC()))


def check_access(source: str) -> dict[str, str | None]:
    """Runs SOURCE's `check` with the configuration `run` would use: {table: None or why not}."""
    check_fn = registry.get(source).check()
    config = resolve_source_config(source)
    return check_fn(**{name: config[name] for name in inspect.signature(check_fn).parameters
                       if name in config})


@main.command()
@click.argument("source")
def check(source: str) -> None:
    """Verify SOURCE's credentials and list which tables its scopes allow."""
    try:
        registry.get(source)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        access = check_access(source)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        console.print(f"[red]{source}: check failed:[/] {escape(explain(exc))}")
        sys.exit(EXIT_FAILED)
    table = Table("table", "access", box=None, padding=(0, 2))
    for name, why in sorted(access.items()):
        table.add_row(name, "[green]ok[/]" if why is None else f"[yellow]no[/] — {escape(why)}")
    console.print(f"[bold]{source}[/]: credentials ok")
    console.print(table)


if __name__ == "__main__":
    main()
