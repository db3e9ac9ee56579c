"""Incremental sync of conversations and their transcripts, within the hour's request budget.

Conversations have no updated-at field. New ones are found with `since` (from the newest
`startTime` seen, less `LOOKBACK`, or from the oldest one still being recorded). Renames,
transcript changes (`segmentCount` moved) and deletions are found by a full listing of the
list pages, the sweep, every `sweep_interval_hours`; the first run's full listing is the
backfill. A full listing that the budget cuts short resumes at its offset on the next run.
Transcripts are fetched newest first, after the listing, until the budget runs out; what is
left stays queued in state for the next run, so nothing is fetched twice.

Resource state:
    known:            {id: [row hash, startTime, segmentCount of the loaded transcript]}
    open:             {id: startTime} listed without `endTime` or segments (recording, or
                      not transcribed yet): the `since` listing reaches back to them
    transcripts_due:  {id: [startTime, segmentCount]}
    listing:          {offset, sweep, seen} while a full listing is under way
    newest, last_sweep_at
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt

from .._common.concurrency import map_ordered
from .._common.errors import AuthError, MeetingEltError, NotFoundError, RateLimitError
from .._common.http import ApiClient
from .._common.paginators import OffsetPaginator
from .._common.records import Problems, excerpt, is_blank, read_instant, read_int, report_problems
from .._common.report import RunReport
from .._common.state import (
    TOMBSTONES_KEY,
    mark_swept,
    record_deletions,
    revive,
    row_hash,
    sweep_due,
)
from .._common.timeutil import iso, parse_instant
from .._common.transcripts import TABLE as SEGMENTS
from .._common.transcripts import segments_table
from .helpers import transcript_rows
from .insights import InsightWork
from .settings import CHILD_BATCH, LOOKBACK, OPEN_TIMEOUT, RESUME_OVERLAP

TABLE = "conversations"


class ConversationSync:
    """One run: list, then transcripts, then keypoints/feedback; `run()` yields table pages."""

    def __init__(self, client: ApiClient, report: RunReport, *, now: datetime,
                 start_date: datetime | None, sweep_interval_hours: float, page_size: int,
                 state: dict, source_state: dict, insights: InsightWork) -> None:
        self.client, self.report, self.now = client, report, now
        self.state, self.source_state = state, source_state
        self.start_date, self.page_size = start_date, page_size
        self.known: dict[str, list] = state.setdefault("known", {})
        self.open: dict[str, str] = state.setdefault("open", {})
        self.due: dict[str, list] = state.setdefault("transcripts_due", {})
        self.insights = insights
        self.sweep_due = sweep_due(state, sweep_interval_hours, now)
        self.stopped: str | None = None
        self.halted: RateLimitError | None = None  # set by the first worker that met the budget's end
        self.fetched = 0

    # ---------------------------------------------------------------- the run
    def run(self) -> Iterator[Any]:
        try:
            if self.state.get("newest"):
                yield from self._since_listing()
            if not self.state.get("newest") or self.state.get("listing") or self.sweep_due:
                yield from self._full_listing()
        except RateLimitError as exc:
            self._stop(exc)
        if not self.stopped:
            yield from self._transcripts()
        if not self.stopped:
            yield from self.insights.run(lambda: bool(self.stopped))
            if self.insights.stopped:
                self._stop(self.insights.stopped)
        self._report_left()

    def _stop(self, exc: Exception | str) -> None:
        if not self.stopped:
            self.stopped = exc if isinstance(exc, str) else getattr(exc, "message", str(exc))

    # ---------------------------------------------------------------- listing
    def _pages(self, since: datetime | None, offset: int = 0) -> Iterator[tuple[list[dict], int]]:
        paginator = OffsetPaginator(self.page_size, offset=offset, total_path="pagination.total")
        params = {"since": iso(since) if since else None}
        for page in self.client.paginate("conversations", paginator=paginator, items_path="data",
                                         params=params):
            yield page.items, paginator.offset

    def _since_listing(self) -> Iterator[Any]:
        """New conversations, and those still being recorded. Sets `newest` only when complete."""
        since = parse_instant(self.state["newest"]) - LOOKBACK
        for cid, start in list(self.open.items()):
            began = parse_instant(start)
            if self.now - began > OPEN_TIMEOUT:
                del self.open[cid]  # left to the sweep
                self.report.warn(f"conversation {cid} has had no transcript for {OPEN_TIMEOUT.days} "
                                 "days; the sweep will pick it up if one ever appears")
            else:
                since = min(since, began - timedelta(seconds=1))
        if self.start_date:
            since = max(since, self.start_date)
        newest = None
        listing = self.state.get("listing")
        for items, _ in self._pages(since):
            rows, newest = self._see_page(items, newest)
            if listing is not None and listing.get("sweep"):
                listing["seen"].extend(str(i.get("id")) for i in items if isinstance(i, dict))
            if rows:
                yield rows
        self._advance_newest(newest)

    def _full_listing(self) -> Iterator[Any]:
        """Every conversation (since `start_date`): the backfill, or a sweep; resumable."""
        listing = self.state.get("listing")
        if listing is None:
            listing = {"offset": 0, "sweep": bool(self.known), "seen": []}
            self.state["listing"] = listing
        resume = max(0, listing["offset"] - RESUME_OVERLAP) if listing["offset"] else 0
        newest = None
        for items, offset in self._pages(self.start_date, resume):
            rows, newest = self._see_page(items, newest)
            self._advance_newest(newest)  # safe: this listing goes on until it is complete
            listing["offset"] = offset
            if listing["sweep"]:
                listing["seen"].extend(str(i.get("id")) for i in items if isinstance(i, dict))
            if rows:
                yield rows
        del self.state["listing"]
        if listing["sweep"]:
            self._mark_deletions(set(listing["seen"]))
        mark_swept(self.state, self.now)

    def _advance_newest(self, newest: str | None) -> None:
        if newest and (not self.state.get("newest")
                       or parse_instant(newest) > parse_instant(self.state["newest"])):
            self.state["newest"] = newest

    def _see_page(self, items: list, newest: str | None) -> tuple[list[dict], str | None]:
        rows = []
        for item in items:
            row = self._see(item)
            if row is not None:
                rows.append(row)
            start = item.get("startTime") if isinstance(item, dict) else None
            at = _instant(start)
            if at is not None and (newest is None or at > parse_instant(newest)):
                newest = start
        return rows, newest

    def _see(self, item: Any) -> dict | None:
        """Books one list item; returns it when its row must be (re)loaded.

        `startTime`, `endTime` and `segmentCount` decide what is fetched, so they are read
        with the tolerant readers: a count sent as text is read as the number, and an item
        whose values had to be repaired or could not be read is named in the report (its
        row is loaded as sent)."""
        if not isinstance(item, dict) or is_blank(item.get("id")):
            self.report.bad_record(TABLE, excerpt(item), "a conversation without an id: not loaded",
                                   loaded=False)
            return None
        cid = str(item["id"])
        problems = Problems()
        at = problems.check("startTime", item.get("startTime"), read_instant(item.get("startTime")))
        start = _utc(at) if at else None  # in state as UTC with microseconds: sortable as text
        if start is None:
            problems.notes.append("no readable startTime: its transcript cannot be placed in time and "
                                  "is not fetched until it has one")
        raw_end = item.get("endTime")
        problems.check("endTime", raw_end, read_instant(raw_end))
        count = problems.check("segmentCount", item.get("segmentCount"), read_int(item.get("segmentCount")),
                               exact=True)
        report_problems(self.report, TABLE, cid, problems)
        tombstoned = cid in self.source_state.get(TOMBSTONES_KEY, {}).get("conversations", {})
        if tombstoned:
            revive(self.source_state, "conversations", [cid])
        prev = self.known.get(cid)
        digest = row_hash(item)
        loaded_count = prev[2] if prev else None
        self.known[cid] = [digest, start, loaded_count]
        if start and (is_blank(raw_end) or count == 0):
            self.open[cid] = start  # still recording, or not transcribed yet: re-listed until it is
        else:
            self.open.pop(cid, None)
            wanted = loaded_count is None if count is None else (count > 0 and count != loaded_count)
            if start and wanted:
                self.due[cid] = [start, count]
        if prev is None or prev[0] != digest or tombstoned:
            return {**item, "deleted_at": None} if tombstoned else item
        return None

    def _mark_deletions(self, seen: set[str]) -> None:
        candidates = {cid for cid, (_, start, _c) in self.known.items()
                      if not self.start_date or (start and parse_instant(start) >= self.start_date)}
        if not seen and candidates:
            self.report.warn(f"the sweep listed no conversations while {len(candidates)} are known: "
                             "refusing to mark any as deleted (check the key's account)")
            return
        gone = candidates - seen
        if gone:
            self._deleted(gone)
            self.report.warn(f"{len(gone)} conversations were deleted at Convo; marked with deleted_at")

    def _deleted(self, ids: set[str]) -> None:
        for cid in ids:
            self.known.pop(cid, None)
            self.open.pop(cid, None)
            self.due.pop(cid, None)
            self.insights.forget(cid)
        record_deletions(self.source_state, "conversations", ids, self.now)

    # ---------------------------------------------------------------- transcripts
    def _fetch(self, pair: tuple[str, list]) -> list[dict]:
        cid, _ = pair
        if self.halted is not None:  # a worker met the budget's end: the queued ones must not
            raise self.halted        # take a request held back for the calendar or webhooks
        try:
            body = self.client.get(f"conversations/{cid}/transcript").body
        except RateLimitError as exc:
            self.halted = exc
            raise
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
            raise MeetingEltError(f"transcript of {cid} in an unknown shape: {str(body)[:200]}")
        return data["segments"]

    def _transcripts(self) -> Iterator[Any]:
        """Fetches queued transcripts, newest first, until done or the budget says stop."""
        order = sorted(self.due.items(), key=lambda pair: pair[1][0] or "", reverse=True)

        def items() -> Iterator[tuple[str, list]]:
            for pair in order:
                if self.stopped:
                    return
                yield pair

        rows: list[dict] = []
        for (cid, (start, count)), result in map_ordered(self._fetch, items(),
                                                        self.client.settings.concurrency):
            if isinstance(result, BaseException):
                self._failed(cid, result)
                continue
            segments = transcript_rows(cid, start, result, self.report)
            rows.extend(segments)
            self.due.pop(cid, None)
            if cid in self.known:
                self.known[cid][2] = count if count is not None else len(segments)
            self.fetched += 1
            self.insights.enqueue(cid, start, count if count is not None else len(segments))
            if len(rows) >= CHILD_BATCH * 20:
                yield dlt.mark.with_table_name(segments_table(rows, self.report), SEGMENTS)
                rows = []
        if rows:
            yield dlt.mark.with_table_name(segments_table(rows, self.report), SEGMENTS)

    def _failed(self, cid: str, exc: BaseException) -> None:
        if isinstance(exc, AuthError) or not isinstance(exc, MeetingEltError):
            raise exc
        if isinstance(exc, RateLimitError):
            self._stop(exc)
        elif isinstance(exc, NotFoundError):  # soft-deleted since it was listed
            self._deleted({cid})
        else:
            self.report.warn(f"conversation {cid}: transcript not loaded, retried next run: {exc}")

    def _report_left(self) -> None:
        listing = self.state.get("listing")
        if listing is not None:
            kind = "sweep" if listing["sweep"] else "first listing"
            self.report.wait("conversations", f"the {kind} stopped at offset {listing['offset']}; "
                             "it resumes there next run")
        if self.due:
            self.report.wait("transcripts", f"{len(self.due)} conversations owe transcripts "
                             f"({self.fetched} fetched this run)")
        if self.open:
            self.report.wait("recording", f"{len(self.open)} conversations are still being recorded "
                             "or transcribed")
        self.insights.report_left()


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _instant(value: Any) -> datetime | None:
    return read_instant(value)
