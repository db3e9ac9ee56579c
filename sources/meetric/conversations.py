"""Conversations: new ones by date, late processing through a re-read window, the rest by sweeps.

The list filters only on the meeting `date`, but a conversation changes after it: it is
created `processing` and becomes `processed` (summary, sentiment, insights) minutes to days
later. So each run lists:

1. the re-read window: every conversation dated from `lookback_days` (default 7) before the
   newest date already loaded — new conversations, and those processed since the last run;
2. stragglers: conversations loaded while `processing` whose date is older than the window,
   by narrow `start_date`/`end_date` lists of just their dates, until they are processed
   (or for `PENDING_MAX_AGE` after their date);
3. on a sweep (first run, then every `sweep_interval_hours`): the whole list, which also
   reveals deletions and changes to old conversations (renames, re-processing).

Why seven days: processing takes "minutes to days", so a week covers it with margin, and
re-reading a week costs a few list pages per run; a conversation that takes longer is
still caught by (2) at one request per distinct date. Only rows whose content changed are
loaded, so a run with nothing new loads nothing.

Resource state per account: known {id: [hash, day]}, pending {id: day}, newest_day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pyarrow as pa

from .helpers import day, with_id
from .listing import Listing
from .settings import ENDPOINTS, PENDING_MAX_AGE
from .sync import AccountSync


class ConversationSync(AccountSync):
    table = "conversations"

    def affected_days(self, items: list[dict]) -> set[str]:
        return {found.isoformat() for found in (day(i.get("date")) for i in items) if found}

    def version(self, item: dict, digest: str) -> list:
        found = day(item.get("date"))
        return [digest, found.isoformat() if found else None]

    def too_old(self) -> str:
        """The day before which a conversation still processing is left to the sweeps."""
        return (self.now.date() - PENDING_MAX_AGE).isoformat()

    def ranges(self) -> list[tuple[date | None, date | None]]:
        """The (start_date, end_date) lists this run reads, inclusive; None is open."""
        start = self.options.start_date
        newest = self.state.get("newest_day")
        if self.sweep or not newest:
            return [(start, None)]
        window = date.fromisoformat(newest) - timedelta(days=self.options.lookback_days)
        window = max(window, start) if start else window
        pending: dict[str, str] = self.state.setdefault("pending", {})
        stale = sorted((when, cid) for cid, when in pending.items() if when < self.too_old())
        for _, cid in stale:
            del pending[cid]
        if stale:
            self.report.warn(f"{self.where()}: {len(stale)} conversations are still processing more than "
                             f"{PENDING_MAX_AGE.days} days after their date (e.g. {stale[-1][1]}, "
                             f"{stale[-1][0]}); only sweeps re-read them from now on")
        days = sorted({date.fromisoformat(w) for w in pending.values()})
        ranges: list[tuple[date | None, date | None]] = [(window, None)]
        for d in (d for d in days if d < window):  # consecutive days share one list
            last = ranges[-1]
            if len(ranges) > 1 and last[1] is not None and d - last[1] <= timedelta(days=1):
                ranges[-1] = (last[0], d)
            else:
                ranges.append((d, d))
        return ranges

    def run(self) -> Iterator[pa.Table]:
        pending: dict[str, str] = self.state.setdefault("pending", {})
        seen: set[str] = set()
        complete, stable = True, True
        newest = self.state.get("newest_day")
        for start, end in self.ranges():
            listing = Listing(self.client, ENDPOINTS["conversations"],
                              {"start_date": start.isoformat() if start else None,
                               "end_date": end.isoformat() if end else None}, self.options.page_size)
            for items in listing.pages():
                items = with_id(items, self.table, self.account.id, self.report)
                for item in items:
                    seen.add(str(item["id"]))
                    found = day(item.get("date"))
                    if found is None:
                        self.report.warn(f"{self.where()}: conversation {item['id']} has no valid date "
                                         f"({str(item.get('date'))[:40]!r}); loaded, but only sweeps re-read it")
                    elif newest is None or found.isoformat() > newest:
                        newest = found.isoformat()
                    if item.get("status") == "processing" and found is not None \
                            and found.isoformat() >= self.too_old():
                        pending[str(item["id"])] = found.isoformat()
                    else:
                        pending.pop(str(item["id"]), None)
                yield from self.collect(items)
            complete &= listing.complete
            stable &= listing.stable
        yield from self.flush()
        if self.sweep:
            start = self.options.start_date
            candidates = {cid for cid, (_, d) in self.known.items()
                          if start is None or d is None or date.fromisoformat(d) >= start}
            self.mark_deleted(seen, complete=complete, stable=stable, candidates=candidates)
            for cid in set(pending) - set(self.known):
                del pending[cid]
        if newest:
            self.state["newest_day"] = newest
        if pending:
            self.report.wait(f"conversations ({self.account.id})",
                             f"{len(pending)} conversations still processing at the vendor; re-read next run")
        self.finish()
