"""Insights (listed by `created_at` day) and action items (listed newest `updated_at` first).

Insights appear when a conversation is processed and do not change after; they are listed
from the newest `created_at` day already loaded, less a day of overlap, so a conversation
processed since the last run brings its insights along. The three types (`action_item`,
`topic`, `decision`) share one table: each type's own fields are null on the others.

Action items change status; the list is ordered by `updated_at`, newest first, and has no
date filter. A run reads pages until it reaches items older than the newest `updated_at`
already loaded (less `ACTION_ITEM_OVERLAP`, for clocks that disagree a little), and stops
there: a status change moves an item to the top, so it is on the first page of the next run.

`start_date` applies to both by `created_at`. Sweeps list everything (deletions).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import dlt
import pyarrow as pa

from .._common.timeutil import iso
from .helpers import INSIGHT_TYPES, day, instant, with_id
from .listing import Listing, sequential_pages
from .settings import ACTION_ITEM_OVERLAP, ENDPOINTS, INSIGHT_OVERLAP
from .sync import AccountSync


class InsightSync(AccountSync):
    table = "insights"

    def run(self) -> Iterator[pa.Table]:
        start = self.options.start_date
        newest = self.state.get("newest_day")
        if not self.sweep and newest:
            frm = date.fromisoformat(newest) - INSIGHT_OVERLAP
            start = max(frm, start) if start else frm
        listing = Listing(self.client, ENDPOINTS["insights"],
                          {"start_date": start.isoformat() if start else None}, self.options.page_size)
        seen: set[str] = set()
        for items in listing.pages():
            items = with_id(items, self.table, self.account.id, self.report)
            for item in items:
                seen.add(str(item["id"]))
                found = day(item.get("created_at"))
                if found is not None and (newest is None or found.isoformat() > newest):
                    newest = found.isoformat()
                if item.get("type") not in INSIGHT_TYPES:
                    self.report.warn(f"{self.where()}: insight {item['id']} has an unknown type "
                                     f"{str(item.get('type'))[:40]!r}; loaded with its fields as they are")
            yield from self.collect(items)
        yield from self.flush()
        if self.sweep:
            self.mark_deleted(seen, complete=listing.complete, stable=listing.stable)
        if newest:
            self.state["newest_day"] = newest
        self.finish()


class ActionItemSync(AccountSync):
    table = "action_items"

    def affected_days(self, items: list[dict]) -> set[str]:
        """The dates of the items' conversations (a status change moves that day's summary)."""
        conversations = dlt.current.resource_state("conversations").get("accounts", {})
        known = conversations.get(self.account.id, {}).get("known", {})
        versions = (known.get(str(i.get("conversation_id"))) for i in items)
        return {v[1] for v in versions if isinstance(v, list) and v[1]}

    def run(self) -> Iterator[pa.Table]:
        cursor = instant(self.state.get("cursor"))
        start = self.options.start_date
        listing = None
        if self.sweep or cursor is None:
            listing = Listing(self.client, ENDPOINTS["action_items"], None, self.options.page_size)
            pages, stop_at = listing.pages(), None
        else:
            pages = sequential_pages(self.client, ENDPOINTS["action_items"], None, self.options.page_size)
            stop_at = cursor - ACTION_ITEM_OVERLAP
        newest, seen = cursor, set()
        for items in pages:
            keep, reached = [], False
            for item in with_id(items, self.table, self.account.id, self.report):
                updated = instant(item.get("updated_at"))
                if stop_at is not None and updated is not None and updated < stop_at:
                    reached = True  # newest first: everything after this is already loaded
                    break
                if updated is not None and (newest is None or updated > newest):
                    newest = updated
                created = day(item.get("created_at"))
                if start is not None and created is not None and created < start:
                    continue
                seen.add(str(item["id"]))
                keep.append(item)
            yield from self.collect(keep)
            if reached:
                break
        yield from self.flush()
        if listing is not None and self.sweep:
            self.mark_deleted(seen, complete=listing.complete, stable=listing.stable)
        if newest is not None:
            self.state["cursor"] = iso(newest)
        self.finish()
