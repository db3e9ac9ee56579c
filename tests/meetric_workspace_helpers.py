"""Helpers shared by the Meetric workspace tests: one strict run, and the tables as the simulator says they should be."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from simulators.meetric import MeetricSimulator
from sources._common.report import get_report
from sources._common.timeutil import parse_instant
from sources.meetric import meetric
from sources.meetric.helpers import COLUMNS
from tests.utils import rows, run_strict

FAST = {"requests_per_minute": 0, "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}
TABLES = ["conversations", "insights", "action_items", "users", "team_managers", "department_managers",
          "insight_trends", "insight_summary"]
KEYS = {"conversations": ("id",), "insights": ("id",), "action_items": ("id",), "users": ("id",),
        "team_managers": ("team_id", "user_id"), "department_managers": ("department_id", "user_id"),
        "insight_trends": ("account_id", "period_start"),
        "insight_summary": ("account_id", "period_start", "period_end")}
DETAIL = re.compile(r"/(conversations|insights|action-items)/(?!trends$|summary$)[^/]+$")


def today() -> date:
    return datetime.now(UTC).date()


def load(pipeline, sim: MeetricSimulator, **kwargs: Any):
    """One strict run; returns (rows loaded per table, the run's report)."""
    config = {**sim.source_config(), "page_size": 7, "http": FAST, **kwargs}
    run_strict(pipeline, meetric(**config))
    info = pipeline.last_trace.last_normalize_info
    loaded = {t: n for t, n in info.row_counts.items() if not t.startswith("_dlt")}
    return loaded, get_report("meetric")


def _value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "ts":
        return parse_instant(value) if isinstance(value, str) else value
    if kind == "date":
        return date.fromisoformat(value[:10]) if isinstance(value, str) else value
    if kind == "json":  # nested objects carry every key seen on their page: missing ones as null
        return _without_nulls(orjson.loads(value) if isinstance(value, str) else value)
    if kind == "float":
        return float(value)
    return value


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def canonical(table: str, records: list[dict], *, from_api: bool) -> dict[tuple, dict]:
    """Rows keyed by primary key, over the table's declared columns, as comparable values."""
    out = {}
    for record in records:
        row = {}
        for name, kind, _ in COLUMNS[table]:
            if "." in name:
                parent, child = name.split(".")
                value = (record.get(parent) or {}).get(child) if from_api else record.get(f"{parent}__{child}")
                name = f"{parent}__{child}"
            else:
                value = record.get(name)
            row[name] = _value(kind, value)
        out[tuple(row[k] if not isinstance(row[k], date) else row[k].isoformat()
                  for k in KEYS[table])] = row
    return out


def expected(sim: MeetricSimulator, table: str, *, summary_days: int = 90,
             exclude: frozenset[str] | set[str] = frozenset()) -> dict[tuple, dict]:
    """What the tables should hold after a full load of every account of `sim` (less the
    records whose ids are in `exclude`)."""
    records: list[dict] = []
    now = today()
    for acc in sim.account_ids:
        tag = {"account_id": acc}
        if table in ("conversations", "insights", "action_items", "users"):
            records += [{**r, **tag} for r in sim.public(acc, table) if r.get("id") not in exclude]
        elif table in ("team_managers", "department_managers"):
            column = "team_id" if table == "team_managers" else "department_id"
            records += [{**m, column: owner, **tag} for owner, ms in sim.managers(acc, table).items() for m in ms]
        else:
            dates = [c["date"].date() for c in sim.accounts[acc].conversations.values()]  # as stored
            first = min(dates) if dates else now
            if table == "insight_trends":
                records += [{**r, **tag} for r in sim.trends(acc, first, now, "day")]
            else:
                start = max(first, now - timedelta(days=summary_days))
                records += [{**sim.summary(acc, start + timedelta(days=n), start + timedelta(days=n)), **tag}
                            for n in range((now - start).days + 1)]
    return canonical(table, records, from_api=True)


def loaded(pipeline, table: str) -> dict[tuple, dict]:
    return canonical(table, rows(pipeline, table), from_api=False)


def live(pipeline, table: str) -> list[dict]:
    return rows(pipeline, table, where="deleted_at IS NULL")


def requests_by_endpoint(sim: MeetricSimulator) -> Counter:
    return Counter(re.sub(r"/(team|dept)_[0-9a-f]+/", "/{id}/", r.path.removeprefix("/api/v1/")) for r in sim.log)
