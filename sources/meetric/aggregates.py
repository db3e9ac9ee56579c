"""Insight trends and summaries: daily series, recomputed for a trailing window every run.

Both endpoints aggregate over a date range, and a day's figures move when a conversation of
that day is processed late, deleted, or its action items change status. So both tables are
kept as daily series (one row per account and day) and every run asks again for the last
`lookback_days` days — the same window in which conversations are re-read — loading only
the days whose figures changed:

- `insight_trends` (key account_id, period_start): `/insights/trends?interval=day`, one
  request per `TRENDS_CHUNK_DAYS` days. The first run and every sweep ask for the whole
  history (from `start_date`, or the oldest conversation's date), which is cheap.
- `insight_summary` (key account_id, period_start, period_end; here start = end = the day):
  `/insights/summary` answers one range per request, so one request a day. The first run
  backfills `summary_backfill_days` (default 90); later runs refresh the trailing window,
  plus the older days something of which changed: the readers of conversations, action
  items and trends note those days in source state (`DIRTY_DAYS`) — a conversation
  processed or deleted late, an action item whose status changed, a trend day that moved —
  and the summary reader asks for them on its next pass (the same run, or the next).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import dlt
import pyarrow as pa

from .._common.concurrency import map_ordered
from .._common.paginators import dig
from .settings import DIRTY_DAYS, ENDPOINTS, TRENDS_CHUNK_DAYS
from .sync import AccountSync


class _Aggregate(AccountSync):
    def window_start(self, backfill_days: int | None) -> date:
        """First day to ask for: the whole history on the first run (capped by `backfill_days`)
        or on a sweep (trends only), else the trailing window."""
        today = self.now.date()
        if self.first_run or (self.sweep and backfill_days is None):
            start = self.account.first_date() or today
            if backfill_days is not None:
                start = max(start, today - timedelta(days=backfill_days))
        else:
            start = today - timedelta(days=self.options.lookback_days)
            if self.options.start_date:
                start = max(start, self.options.start_date)
        return min(start, today)


class TrendSync(_Aggregate):
    table = "insight_trends"

    def affected_days(self, items: list[dict]) -> set[str]:
        return {str(i["period_start"])[:10] for i in items}

    def run(self) -> Iterator[pa.Table]:
        today = self.now.date()
        start = self.window_start(None)
        while start <= today:
            end = min(today, start + timedelta(days=TRENDS_CHUNK_DAYS - 1))
            body = self.client.get(ENDPOINTS["insight_trends"], {
                "start_date": start.isoformat(), "end_date": end.isoformat(), "interval": "day"}).body
            rows = [r for r in (dig(body, "data") or []) if isinstance(r, dict)]
            bad = [r for r in rows if not r.get("period_start")]
            if bad:
                self.report.warn(f"{self.where()}: {len(bad)} trend rows without period_start were not "
                                 f"loaded, e.g. {str(bad[0])[:120]}")
            yield from self.collect([r for r in rows if r.get("period_start")], key="period_start")
            start = end + timedelta(days=1)
        yield from self.flush(key="period_start")
        self.finish()


class SummarySync(_Aggregate):
    table = "insight_summary"

    def run(self) -> Iterator[pa.Table]:
        today = self.now.date()
        start = self.window_start(self.options.summary_backfill_days)
        days = [start + timedelta(days=n) for n in range((today - start).days + 1)]
        if self.first_run:
            self.state["first_day"] = start.isoformat()
        # days before the window whose conversations or action items changed since
        store = dlt.current.source_state().get(DIRTY_DAYS, {}).get(self.account.id, [])
        first = self.state.get("first_day") or start.isoformat()
        asked = {d for d in store if first <= d < start.isoformat()}
        days = sorted({date.fromisoformat(d) for d in asked} | set(days))

        def fetch(d: date) -> Any:
            return self.client.get(ENDPOINTS["insight_summary"],
                                   {"start_date": d.isoformat(), "end_date": d.isoformat()}).body

        for d, result in map_ordered(fetch, days, self.client.settings.concurrency):
            if isinstance(result, BaseException):
                raise result
            data = dig(result, "data")
            if not isinstance(data, dict):
                self.report.warn(f"{self.where()}: no summary for {d}: {str(result)[:120]}")
                continue
            row = {**data, "period_start": data.get("period_start") or d.isoformat(),
                   "period_end": data.get("period_end") or d.isoformat()}
            row["_key"] = f"{row['period_start']}/{row['period_end']}"
            yield from self.collect([row], key="_key")
        yield from self.flush(key="period_start", strip=("_key",))
        store[:] = [d for d in store if d not in asked and d >= first]  # what was asked is fresh
        self.finish()
