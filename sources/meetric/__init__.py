"""dlt source for the Meetric workspace API (conversations, insights, action items, people, aggregates), for one or several accounts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any

import dlt
from dlt.common.typing import TSecretStrValue, TSecretValue
from dlt.sources import DltResource

from .._common.config import HttpConfiguration
from .._common.errors import ConfigError, MeetingEltError, NotFoundError, RateLimitError, ScopeError
from .._common.report import RunReport, new_report
from .._common.state import deleted_at_column, prune_tombstones
from .._common.timeutil import parse_start_date, utc_now
from .accounts import Account, make_accounts, parse_accounts
from .aggregates import SummarySync, TrendSync
from .conversations import ConversationSync
from .people import MANAGER_KINDS, UserSync
from .records import ActionItemSync, InsightSync
from .settings import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_SUMMARY_BACKFILL_DAYS,
    ENDPOINTS,
    MERGE,
    NAME,
    PAGE_SIZE_MAX,
)
from .sync import AccountSync, Options

KEYS = {
    "conversations": "id", "insights": "id", "action_items": "id", "users": "id",
    "insight_trends": ["account_id", "period_start"],
    "insight_summary": ["account_id", "period_start", "period_end"],
}


def _run_accounts(table: str, sync_class: type[AccountSync], accounts: list[Account], report: RunReport,
                  options: Options, now: Any, also: Sequence[str] = ()) -> Iterator[Any]:
    """Runs one table's reader for every account, in turn, into the same table."""
    state = dlt.current.resource_state()
    for account in accounts:
        try:
            yield from sync_class(account, state, report, options, now).run()
        except ScopeError as exc:  # this key may not read this endpoint: the other tables still load
            why = exc.message if account.id in exc.message else f"account '{account.id}': {exc.message}"
            for name in (table, *also):
                report.skip(name, why)
        except RateLimitError as exc:  # a very long wait, or the run's request budget: stop cleanly
            report.wait(f"{table} ({account.id})", f"stopped early: {exc.message}; the next run continues")


@dlt.source(name=NAME)
def meetric(
    base_url: str = dlt.config.value,
    api_key: TSecretStrValue | None = None,
    account_id: str | None = None,
    accounts: TSecretValue | None = None,
    start_date: str | None = None,
    sweep_interval_hours: float = 24.0,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    summary_backfill_days: int = DEFAULT_SUMMARY_BACKFILL_DAYS,
    page_size: int = PAGE_SIZE_MAX,
    http: HttpConfiguration | None = None,
) -> Sequence[DltResource]:
    """The Meetric workspace API, for one or several accounts into the same tables.

    Args:
        base_url: the API host (or its `/api/v1` root); an `accounts` entry may carry its own.
        api_key: the key of `account_id` (read-only is enough).
        account_id: the account to load (sent as `X-Account-ID`).
        accounts: several accounts: a list of {account_id, api_key[, base_url]} (secrets.toml).
        start_date: earliest conversation date (and insight/action item `created_at`) to load.
        sweep_interval_hours: hours between full sweeps of every list (0: every run).
        lookback_days: days of conversations and daily aggregates re-read every run.
        summary_backfill_days: days of daily summaries the first run loads.
        page_size: records per list page, 1–100.
        http: client tuning (`[sources.meetric.http]`).
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"meetric: page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    if int(lookback_days) < 1 or int(summary_backfill_days) < 0:
        raise ConfigError("meetric: lookback_days must be at least 1 and summary_backfill_days not negative")
    start = parse_start_date(start_date)
    options = Options(start.date() if start else None, float(sweep_interval_hours), int(lookback_days),
                      int(summary_backfill_days), int(page_size))
    report = new_report(NAME)
    configs = parse_accounts(api_key, account_id, accounts)
    clients = make_accounts(base_url, configs, http, report, options.start_date)
    now = utc_now()

    def resource(table: str, sync_class: type[AccountSync], also: Sequence[str] = ()) -> DltResource:
        def read() -> Iterator[Any]:
            if table == "conversations":
                prune_tombstones(dlt.current.source_state(), now)
            yield from _run_accounts(table, sync_class, clients, report, options, now, also)

        columns = deleted_at_column() if KEYS[table] == "id" else None
        return dlt.resource(read, name=table, primary_key=KEYS[table], write_disposition=MERGE,
                            columns=columns)

    users = resource("users", UserSync, also=tuple(MANAGER_KINDS))
    users.apply_hints(table_name="team_managers", primary_key=["team_id", "user_id"],
                      write_disposition=MERGE, columns=deleted_at_column(), create_table_variant=True)
    users.apply_hints(table_name="department_managers", primary_key=["department_id", "user_id"],
                      write_disposition=MERGE, columns=deleted_at_column(), create_table_variant=True)
    return [users, resource("conversations", ConversationSync), resource("insights", InsightSync),
            resource("action_items", ActionItemSync), resource("insight_trends", TrendSync),
            resource("insight_summary", SummarySync)]


def check(base_url: str = dlt.config.value, api_key: TSecretStrValue | None = None,
          account_id: str | None = None, accounts: TSecretValue | None = None,
          http: HttpConfiguration | dict | None = None) -> dict[str, str | None]:
    """Verifies every account's key and probes each endpoint with one small request.

    Returns {table: None if every account can load it, else why not}. Raises AuthError
    (naming the account, never the key) when a key or account id is wrong.
    """
    report = new_report(NAME)
    today = date.today().isoformat()
    access: dict[str, str | None] = {}
    for account in make_accounts(base_url, parse_accounts(api_key, account_id, accounts), http, report, None):
        client = account.client
        users_denied: ScopeError | None = None
        try:  # AuthError here, for a wrong key or account id
            users = client.get(ENDPOINTS["users"], {"limit": 100}).body.get("data") or []
        except ScopeError as exc:  # team and department ids are known only from users
            users, users_denied = [], exc
        users = [u for u in users if isinstance(u, dict)] if isinstance(users, list) else []
        team = next((u["team_id"] for u in users if u.get("team_id")), None)
        department = next((u["department_id"] for u in users if u.get("department_id")), None)

        def users_probe(denied: ScopeError | None = users_denied) -> None:
            if denied is not None:
                raise denied

        probes: dict[str, Callable[[], Any] | None] = {
            "users": users_probe,
            "conversations": lambda c=client: c.get(ENDPOINTS["conversations"], {"limit": 1}),
            "insights": lambda c=client: c.get(ENDPOINTS["insights"], {"limit": 1}),
            "action_items": lambda c=client: c.get(ENDPOINTS["action_items"], {"limit": 1}),
            "insight_trends": lambda c=client: c.get(ENDPOINTS["insight_trends"], {
                "start_date": today, "end_date": today, "interval": "day"}),
            "insight_summary": lambda c=client: c.get(ENDPOINTS["insight_summary"],
                                                      {"start_date": today, "end_date": today}),
            "team_managers": users_probe if users_denied else team and (lambda c=client, t=team: c.get(
                ENDPOINTS["team_managers"].format(id=t))),
            "department_managers": users_probe if users_denied else department and (
                lambda c=client, d=department: c.get(ENDPOINTS["department_managers"].format(id=d))),
        }
        for table, probe in probes.items():
            why = None
            try:
                if probe is not None:
                    probe()
            except NotFoundError:
                why = None
            except ScopeError as exc:
                why = exc.message
            except MeetingEltError as exc:
                why = f"account '{account.id}': {exc}"
            if why is not None or table not in access:
                access[table] = why if why is not None else access.get(table)
        client.close()
    return access


__all__ = ["meetric", "check"]
