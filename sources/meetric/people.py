"""Users, and the managers of the teams and departments they belong to.

There is no list of teams or departments: their ids are the `team_id` and `department_id`
values of the users (plus those loaded before, so that a team whose last member left is
still asked once, and its managers marked removed if it is gone). The manager lists are
read on sweeps, on the first run, and whenever a user changed; between those, a run reads
only the users list. A manager who is no longer listed keeps its row, with `deleted_at` set.

Resource state per account: known {user id: hash}, team_managers and department_managers
{team or department id: {user id: row}} (rows kept so a removal can be written whole).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import dlt

from .._common.concurrency import map_ordered
from .._common.errors import NotFoundError, ScopeError
from .._common.timeutil import iso
from .helpers import arrow_page, with_id
from .listing import Listing
from .settings import ENDPOINTS
from .sync import AccountSync

MANAGER_KINDS = {"team_managers": "team_id", "department_managers": "department_id"}


class UserSync(AccountSync):
    table = "users"

    def run(self) -> Iterator[Any]:
        listing = Listing(self.client, ENDPOINTS["users"], None, self.options.page_size)
        users: list[dict] = []
        for items in listing.pages():
            users.extend(with_id(items, self.table, self.account.id, self.report))
        yield from self.collect(users)
        yield from self.flush()
        self.mark_deleted({str(u["id"]) for u in users}, complete=listing.complete, stable=listing.stable)
        if self.sweep or self.flushed:
            for kind, column in MANAGER_KINDS.items():
                ids = {str(u[column]) for u in users if u.get(column)}
                rows = self.managers(kind, column, ids)
                if rows:
                    table = arrow_page(kind, rows, self.report, account_id=self.account.id, key="user_id")
                    yield dlt.mark.with_table_name(table, kind)
        self.finish()

    def managers(self, kind: str, column: str, ids: set[str]) -> list[dict]:
        """Manager rows that are new, changed, or removed (with `deleted_at`) for every team/department."""
        known: dict[str, dict[str, dict]] = self.state.setdefault(kind, {})
        path = ENDPOINTS[kind]
        targets = sorted(ids | set(known))

        def fetch(target: str) -> Any:
            return self.client.get(path.format(id=quote(target, safe=""))).body

        out: list[dict] = []
        updates: dict[str, dict[str, dict] | None] = {}
        for target, result in map_ordered(fetch, targets, self.client.settings.concurrency):
            if isinstance(result, ScopeError):
                self.report.skip(kind, result.message)
                return []
            if isinstance(result, NotFoundError):
                current: dict[str, dict] = {}
            elif isinstance(result, BaseException):
                raise result
            else:
                data = result.get("data") if isinstance(result, dict) else None
                current = {str(m["user_id"]): {**m, column: target}
                           for m in with_id(data or [], kind, self.account.id, self.report, key="user_id")}
            old = known.get(target, {})
            out.extend(row for uid, row in current.items() if old.get(uid) != row)
            out.extend({**row, "deleted_at": iso(self.now)} for uid, row in old.items() if uid not in current)
            updates[target] = current if current or target in ids else None
        for target, current in updates.items():  # only once every list answered
            if current is None:
                known.pop(target, None)
            else:
                known[target] = current
        return out
