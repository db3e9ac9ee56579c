"""The Meetric workspace tables on the engine: each list's entity, its listing and its tables.

Six lists load their own table (conversations, insights, action items, users, and the two
daily aggregates); their records carry their account (the engine's group), their version
is a hash of their content, and every table is loaded as Arrow pages (`helpers.arrow_page`),
the marks of deleted records too (`helpers.stored_page`).

The managers are per-item calls: a team (or department) is a record whose one part,
`GET /teams/{id}/managers`, loads `team_managers`. A 404 there means the team is gone: the
engine marks every manager row of it (`deleted_at`). A list whose content did not change
loads nothing (the part's digest); one that changed loads its managers, and a manager it no
longer lists keeps its row too, with `deleted_at` (the team's stored rows are read back from
the destination to find them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import dlt

from .._common.deletions import marked_rows
from .._common.engine import Entity, Fetched, NotFound, Part, TableSpec, Work
from .._common.report import RunReport
from .._common.tables import MERGE, deleted_at_column
from .._common.timeutil import iso
from .accounts import Account
from .helpers import arrow_page, day, digest_of, json_columns, stored_page, with_id
from .listing import (
    ActionItemListing,
    ConversationListing,
    InsightListing,
    ManagedListing,
    Options,
    SummaryDays,
    SummaryListing,
    TrendListing,
    UserListing,
    summary_key,
    trend_key,
)
from .settings import ENDPOINTS, KEYS, MANAGER_KINDS, PENDING_MAX_AGE


@dataclass
class Table:
    """One table's entity, the listing it is read with, and its table specs."""

    entity: Entity
    listing: Callable[[Any], Any]
    specs: list[TableSpec]


def _hints(table: str, *, deletions: bool = True) -> dict[str, Any]:
    columns = {**(deleted_at_column() if deletions else {}), **json_columns(table)}
    return {"primary_key": KEYS[table], "write_disposition": MERGE, "columns": columns}


def _listed(table: str, report: RunReport, *, key: str = "id", deletions: bool = True) -> TableSpec:
    """A list table: its rows as Arrow pages, and its marks too."""
    return TableSpec(table, hints=_hints(table, deletions=deletions),
                     finish=lambda rows: arrow_page(table, rows, report, key=key),
                     finish_marked=(lambda rows: stored_page(table, rows)) if deletions else None)


def _account(item: dict) -> str:
    return item["account_id"]


def tables(accounts: list[Account], report: RunReport, options: Options, now: datetime) -> list[Table]:
    """Every table of the source, users first (they name the teams) and the summary last
    (the lists before it note the older days it asks again)."""
    days = SummaryDays(options, now)
    too_old = (now.date() - PENDING_MAX_AGE).isoformat()
    by_id = {a.id: a for a in accounts}

    def listing(cls: type, **kw: Any) -> Callable[[Any], Any]:
        return lambda book: cls(book, accounts, report, options, now, **kw)

    def still_processing(item: dict) -> tuple[tuple[str, ...], bool]:
        found = day(item.get("date"))
        return (), item.get("status") == "processing" and found is not None and found.isoformat() >= too_old

    def entity(name: str, **kw: Any) -> Entity:
        return Entity(name=name, table=name, key=lambda i: str(i["id"]), version=digest_of, group=_account, **kw)

    out = [Table(entity("users"), listing(UserListing), [_listed("users", report)])]
    for kind, column in MANAGER_KINDS.items():
        out.append(_managers(kind, column, by_id, report, options, now))
    out += [
        Table(entity("conversations", wants=still_processing,
                     day=lambda i: (found.isoformat() if (found := day(i.get("date"))) else None)),
              listing(ConversationListing, days=days), [_listed("conversations", report)]),
        Table(entity("insights"), listing(InsightListing), [_listed("insights", report)]),
        Table(entity("action_items"), listing(ActionItemListing, days=days), [_listed("action_items", report)]),
        Table(Entity(name="insight_trends", table="insight_trends", key=trend_key, version=digest_of, group=_account),
              listing(TrendListing, days=days),
              [_listed("insight_trends", report, key="period_start", deletions=False)]),
        Table(Entity(name="insight_summary", table="insight_summary", key=summary_key, version=digest_of,
                     group=_account),
              listing(SummaryListing, days=days),
              [_listed("insight_summary", report, key="period_start", deletions=False)]),
    ]
    return out


# ---------------------------------------------------------------------- managers
def _managers(kind: str, column: str, accounts: dict[str, Account], report: RunReport, options: Options,
              now: datetime) -> Table:
    """Teams (or departments) and their one call: the managers list, into `kind`."""
    name = "teams" if kind == "team_managers" else "departments"
    path = ENDPOINTS[kind]

    def fetch(work: Work) -> Any:
        return accounts[str(work.group)].client.get(path.format(id=quote(work.record_id, safe=""))).body

    def content(body: Any) -> str:
        return digest_of(body.get("data") if isinstance(body, dict) else body)

    entity = Entity(name=name, key=lambda i: i["id"], version=lambda i: i["round"], group=_account,
                    wants=lambda i: (("managers",), False), marked_table=kind, key_column=column,
                    scopes_per_group=True,  # each account has its own key
                    parts=(Part("managers", (kind,), fetch=fetch, not_found=NotFound.DELETED, digest=content),))
    spec = TableSpec(kind, part="managers", shape=_manager_rows(kind, column, report, now),
                     hints=_hints(kind), finish=lambda rows: arrow_page(kind, rows, report, key="user_id"),
                     finish_marked=lambda rows: stored_page(kind, rows))

    def listing(book: Any) -> ManagedListing:
        return ManagedListing(book, list(accounts.values()), report, options, now, entity=kind, column=column)

    return Table(entity, listing, [spec])


def _manager_rows(kind: str, column: str, report: RunReport, now: datetime) -> Callable[[Fetched], list[dict]]:
    """A changed managers list: its managers, and the stored ones it no longer lists (with
    `deleted_at`)."""
    def shape(fetched: Fetched) -> list[dict]:
        target, account_id = fetched.work.record_id, str(fetched.work.group)
        body = fetched.bodies["managers"]
        data = body.get("data") if isinstance(body, dict) else None
        current = [{**m, column: target} for m in with_id(data or [], kind, account_id, report, key="user_id")]
        # the live rows stored for it, with `deleted_at` set as if removed now (none before
        # the pipeline's first load; None when the destination could not be read)
        pipeline = dlt.current.pipeline()
        live = marked_rows(pipeline, kind, column, {target: iso(now)}) if pipeline.default_schema_name else []
        listed = {str(m["user_id"]) for m in current}
        return current + [_as_sent(row) for row in live or () if str(row.get("user_id")) not in listed]

    return shape


def _as_sent(row: dict) -> dict:
    """A stored row as the API would send it (instants and days as ISO text)."""
    return {k: v.isoformat() if isinstance(v, datetime | date) else v for k, v in row.items()}
