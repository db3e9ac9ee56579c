"""dlt source for the Meetric workspace API (conversations, insights, action items, people, aggregates), for one or several accounts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import dlt
from dlt.common.typing import TSecretStrValue, TSecretValue
from dlt.sources import DltResource

from .._common.config import HttpConfiguration
from .._common.engine import (
    DEFAULT_CHECKPOINT_ITEMS,
    Action,
    Engine,
    checkpoint_items_setting,
    entity_resources,
    tolerate,
)
from .._common.errors import ConfigError
from .._common.report import new_report
from .._common.timeutil import parse_start_date, utc_now
from .accounts import make_accounts, parse_accounts
from .entities import tables
from .listing import Options
from .settings import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_SUMMARY_BACKFILL_DAYS,
    ENDPOINTS,
    NAME,
    PAGE_SIZE_MAX,
)


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
    checkpoint_items: int = DEFAULT_CHECKPOINT_ITEMS,
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
        checkpoint_items: records fetched per load (their per-item calls): a run that reaches
            it stops cleanly and loads what it fetched with its state; `meeting-elt run` goes
            on at once in a new load, a scheduled `pipeline.run` in its next run (0: off).
        http: client tuning (`[sources.meetric.http]`).
    """
    if not 1 <= int(page_size) <= PAGE_SIZE_MAX:
        raise ConfigError(f"meetric: page_size={page_size} must be between 1 and {PAGE_SIZE_MAX}")
    if int(lookback_days) < 1 or int(summary_backfill_days) < 0:
        raise ConfigError("meetric: lookback_days must be at least 1 and summary_backfill_days not negative")
    start = parse_start_date(start_date)
    checkpoint = checkpoint_items_setting(checkpoint_items)
    options = Options(start.date() if start else None, float(sweep_interval_hours), int(lookback_days),
                      int(summary_backfill_days), int(page_size))
    report = new_report(NAME)
    clients = make_accounts(base_url, parse_accounts(api_key, account_id, accounts), http, report,
                            options.start_date, options.page_size)
    now = utc_now()
    resources: list[DltResource] = []
    for table in tables(clients, report, options, now):
        engine = Engine(table.entity, table.listing, client=clients[0].client, report=report, now=lambda: now,
                        checkpoint_items=checkpoint)
        resources += entity_resources(engine, table.specs, report)
    return resources


def check(base_url: str = dlt.config.value, api_key: TSecretStrValue | None = None,
          account_id: str | None = None, accounts: TSecretValue | None = None,
          http: HttpConfiguration | dict | None = None) -> dict[str, str | None]:
    """Verifies every account's key and probes each endpoint with one small request.

    Returns {table: None if every account can load it, else why not}. Raises AuthError
    (naming the account, never the key) when a key or account id is wrong. What an error
    means is the engine's table (`ERROR_ACTIONS`): a refused scope is the table's reason,
    a 404 (a probe id that does not exist) is allowed.
    """
    report = new_report(NAME)
    today = date.today().isoformat()
    access: dict[str, str | None] = {}
    for account in make_accounts(base_url, parse_accounts(api_key, account_id, accounts), http, report, None):
        client = account.client
        users: Any = []
        with tolerate(Action.SKIP) as denied:  # AuthError here, for a wrong key or account id
            users = client.get(ENDPOINTS["users"], {"limit": 100}).body.get("data") or []
        users_denied = denied.error  # team and department ids are known only from users
        users = [u for u in users if isinstance(u, dict)] if isinstance(users, list) else []
        team = next((u["team_id"] for u in users if u.get("team_id")), None)
        department = next((u["department_id"] for u in users if u.get("department_id")), None)

        def users_probe(denied: BaseException | None = users_denied) -> None:
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
            if probe is not None:
                why = _probe(probe, account.id)
            if why is not None or table not in access:
                access[table] = why if why is not None else access.get(table)
        client.close()
    return access


def _probe(probe: Callable[[], Any], account_id: str) -> str | None:
    """None when the probe's table can load (a 404: the probe id just does not exist), else
    why not; a wrong credential or a bug is no table's reason: it propagates."""
    with tolerate(Action.NOT_FOUND, Action.SKIP, Action.STOP, Action.RETRY) as failed:
        probe()
    if failed.action in (None, Action.NOT_FOUND):
        return None
    return getattr(failed.error, "message", None) if failed.action is Action.SKIP \
        else f"account '{account_id}': {failed.error}"


__all__ = ["meetric", "check"]
