"""Accounts: which (account id, key) pairs to load, and one API client per account.

A user may have several Meetric accounts, each with its own key (or one key for several).
Each account gets its own client, because the `X-Account-ID` header is part of its auth;
clients of the same key share one pacer, because the API limits requests per key. An
account also answers, once per run, what several tables need: the date its history starts
at, and its users (the users table, and the teams and departments whose managers load).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from .._common.auth import BearerAuth
from .._common.config import HttpConfiguration, http_settings, require
from .._common.errors import ConfigError
from .._common.http import ApiClient
from .._common.paginators import dig
from .._common.records import read_int
from .._common.report import RunReport
from .helpers import classify_error, day, with_id
from .listing import OffsetPages
from .settings import API_PREFIX, ENDPOINTS, NAME, PAGE_SIZE_MAX


@dataclass(frozen=True)
class AccountConfig:
    """One account to load. The key never shows in a repr, a log line or an error."""

    account_id: str
    api_key: str = field(repr=False)
    base_url: str | None = None


def api_root(base_url: str) -> str:
    """`base_url` may be the host or the full `/api/v1` root; both work."""
    base = base_url.rstrip("/")
    return base if base.endswith(API_PREFIX) else f"{base}/{API_PREFIX}"


def parse_accounts(api_key: str | None, account_id: str | None, accounts: Any) -> list[AccountConfig]:
    """The accounts to load: `accounts` (a list of {account_id, api_key}), plus the single
    `account_id` + `api_key` pair when given. Raises ConfigError naming what is missing."""
    entries: list[Any] = []
    if isinstance(accounts, str) and accounts.strip():
        try:
            accounts = orjson.loads(accounts)
        except orjson.JSONDecodeError:
            raise ConfigError("meetric: 'accounts' is not valid JSON",
                              hint='e.g. SOURCES__MEETRIC__ACCOUNTS=\'[{"account_id": "...", "api_key": "..."}]\''
                              ) from None
    if isinstance(accounts, dict):  # [sources.meetric.accounts.<label>] tables
        accounts = list(accounts.values())
    if accounts:
        if not isinstance(accounts, list):
            raise ConfigError("meetric: 'accounts' must be a list of {account_id, api_key} tables")
        entries.extend(accounts)
    if account_id or api_key:
        require(account_id, "account_id", NAME)
        require(api_key, "api_key", NAME, secret=True)
        entries.append({"account_id": account_id, "api_key": api_key})
    if not entries:
        raise ConfigError("meetric: no account configured",
                          hint="set account_id and api_key (SOURCES__MEETRIC__ACCOUNT_ID, "
                               "SOURCES__MEETRIC__API_KEY), or an [[sources.meetric.accounts]] list "
                               "in .dlt/secrets.toml")
    out: dict[str, AccountConfig] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("account_id") or not entry.get("api_key"):
            raise ConfigError(f"meetric: accounts entry #{n + 1} needs both 'account_id' and 'api_key'")
        config = AccountConfig(str(entry["account_id"]), str(entry["api_key"]), entry.get("base_url"))
        if config.account_id in out and out[config.account_id] != config:
            raise ConfigError(f"meetric: account '{config.account_id}' is configured twice, differently")
        out[config.account_id] = config
    return list(out.values())


class Account:
    """One account's client, and what several resources want to know about it once per run."""

    def __init__(self, config: AccountConfig, client: ApiClient, start_date: date | None, report: RunReport,
                 page_size: int = PAGE_SIZE_MAX) -> None:
        self.id = config.account_id
        self.client = client
        self.start_date = start_date
        self.report, self.page_size = report, page_size
        self._lock = threading.Lock()
        self._first_date: tuple[date | None] | None = None
        self._users: tuple[list[dict], bool] | None = None

    def users(self) -> tuple[list[dict], bool]:
        """The account's users (each with its `account_id`), read once per run, and whether
        the list held still while it was paged (see `listing.OffsetPages`)."""
        with self._lock:
            if self._users is None:
                pages = OffsetPages(self.client, ENDPOINTS["users"], None, self.page_size)
                users = [u for items in pages.pages() for u in with_id(items, "users", self.id, self.report)]
                self._users = (users, pages.stable)
            return self._users

    def first_date(self) -> date | None:
        """The earliest day to aggregate: `start_date`, else the oldest conversation's date.

        The list is ordered newest first and reports its `total`, so the oldest is one
        request away: `limit=1&offset=total-1` (two requests, made once per run at most).
        """
        with self._lock:
            if self._first_date is None:
                found = self.start_date
                if found is None:
                    path = ENDPOINTS["conversations"]
                    total = read_int(dig(self.client.get(path, {"limit": 1}).body, "pagination.total")) or 0
                    if total > 0:
                        last = dig(self.client.get(path, {"limit": 1, "offset": total - 1}).body, "data")
                        oldest = last[0] if isinstance(last, list) and last else None
                        found = day(oldest.get("date")) if isinstance(oldest, dict) else None
                self._first_date = (found,)
            return self._first_date[0]


def make_accounts(base_url: str, configs: list[AccountConfig], http: HttpConfiguration | dict | None,
                  report: RunReport, start_date: date | None, page_size: int = PAGE_SIZE_MAX) -> list[Account]:
    """A client per account; accounts that share a key share its pacer (limits are per key)."""
    require(base_url, "base_url", NAME)
    settings = http_settings(http)
    pacers: dict[str, Any] = {}
    accounts = []
    for config in configs:
        auth = BearerAuth(config.api_key, extra_headers={"X-Account-ID": config.account_id})
        # requests already in flight when `remaining` runs low must still fit in the window
        client = ApiClient(api_root(config.base_url or base_url), auth, report, settings,
                           classify_error=classify_error(config.account_id),
                           rate_limit_reserve=settings.concurrency)
        client.pacer = pacers.setdefault(config.api_key, client.pacer)
        accounts.append(Account(config, client, start_date, report, page_size))
    return accounts
