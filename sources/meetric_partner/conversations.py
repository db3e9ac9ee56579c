"""Incremental sync of conversations and everything hanging off each one.

Between sweeps a run lists only the recent end of the 30-day window (back to the newest
conversation already seen, less `LOOKBACK`, or to the oldest pending one), and calls the
per-conversation endpoint only for conversations that are `completed` and new or changed
(`updated_at` moved). A sweep lists the whole window, which also reveals deletions.

A run stops cleanly, never fails, when a rate limit, the daily quota or the run's own
request budget stops it: per-conversation calls stop at once (queued ones are not sent),
what was fetched loads, and a listing cut short is remembered (`unlisted`) and listed first
by the next run. A cut listing marks no deletions and completes no sweep.

Resource state:
    known:    {id: [updated_at as sent, date]} the version of every conversation row loaded;
              `date` is the conversation's date, or for an unreadable one the lower bound
              it is filed under (`helpers.read_list_page`)
    pending:  {id: date} conversations owed details (processing, quota, failed fetch)
    unlisted: {"from", "to"} the stretch of dates a cut listing did not reach ("to" null:
              up to now); listed first by the next run
    newest_date, last_sweep_at
    quota:    the daily quota count (`quota.py`)

Only rows whose `updated_at` moved are yielded, so a run with nothing new loads nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt

from .._common.concurrency import map_ordered
from .._common.errors import (
    AuthError,
    MeetingEltError,
    NotFoundError,
    QuotaExhausted,
    RateLimitError,
    ScopeError,
)
from .._common.http import ApiClient, Page
from .._common.paginators import CursorPaginator
from .._common.records import describe, read_dict, read_instant, report_problems, shape_or_none
from .._common.report import RunReport
from .._common.state import mark_swept, record_deletions, revive, sweep_due
from .._common.timeutil import iso
from .._common.transcripts import TABLE as SEGMENTS
from .._common.transcripts import segments_table
from .helpers import Listed, insight_rows, read_list_page, topic_rows, transcript_rows
from .quota import DailyQuota
from .settings import DELETION_MARGIN, DETAIL_BATCH, LOOKBACK, SCOPE_TABLES, WINDOW, WINDOW_SAFETY


@dataclass
class Detail:
    listed: Listed
    conversation: dict
    recording: dict | None


@dataclass
class Segment:
    """One stretch of the list this run reads, newest first: dates in [frm, to]."""

    frm: datetime
    to: datetime | None  # None: up to now
    lowest: datetime | None = None  # the lowest readable date read so far


class _NotSent(Exception):
    """A per-conversation call not sent, because this run stopped sending them."""


class _BadDetail(Exception):
    """The detail answer carries no conversation object."""


class ConversationSync:
    """One run over the conversations list; `run()` yields pages for several tables."""

    def __init__(self, client: ApiClient, report: RunReport, *, now: datetime,
                 start_date: datetime | None, sweep_interval_hours: float, page_size: int,
                 include_recordings: bool, state: dict, source_state: dict,
                 daily_quota: int | None) -> None:
        self.client, self.report, self.now = client, report, now
        self.state, self.source_state = state, source_state
        self.known: dict[str, list] = state.setdefault("known", {})
        self.pending: dict[str, str] = state.setdefault("pending", {})
        self.page_size = page_size
        self.window_start = now - WINDOW + WINDOW_SAFETY
        self.earliest = max(self.window_start, start_date) if start_date else self.window_start
        self.sweep = sweep_due(state, sweep_interval_hours, now)
        self.includes = {"transcripts": True, "insights": True, "recordings": include_recordings}
        self.quota = DailyQuota(state, now, daily_quota)
        self._lock = threading.Lock()
        self._halted = threading.Event()  # set: no further per-conversation request this run
        self.stopped: str | None = None  # why per-conversation calls stopped
        self.cut: Segment | None = None  # the stretch a rate limit or budget cut short
        self.cut_reason = ""
        self.listing_complete = False
        self.queued: set[str] = set()  # ids handed to the fetchers this run (never twice)
        self.fetched = 0

    # ---------------------------------------------------------------- planning
    def _when(self, value: Any) -> datetime:
        """A bookkeeping instant from state; an unreadable one counts as the window's start."""
        return read_instant(value) or self.window_start

    def list_from(self) -> datetime:
        """Where this run's listing of the recent end starts."""
        if self.sweep or not self.state.get("newest_date"):
            return self.earliest
        start = self._when(self.state["newest_date"]) - LOOKBACK
        for date in self.pending.values():
            start = min(start, self._when(date))
        return max(start, self.earliest)

    def plan(self) -> list[Segment]:
        """The stretches to list: first what a cut listing left unlisted, then the recent end."""
        self._warn_about_gaps()
        gap = self.state.get("unlisted")
        if gap:
            frm = max(self._when(gap.get("from")), self.earliest)
            to = read_instant(gap.get("to"))
            if to is not None and to < self.earliest:
                self.report.warn(f"conversations dated {gap.get('from')} to {gap.get('to')} were never listed "
                                 "(a cut listing) and have left the 30-day window since")
                del self.state["unlisted"]
            elif to is None:  # cut before it read a date: list again from where it started
                return [Segment(min(frm, self.list_from()), None)]
            else:
                # the cut stretch is listed before a sweep is tried again, so a tight budget
                # still makes progress; the sweep runs once nothing is left unlisted
                self.sweep = False
                return [Segment(frm, to), Segment(self.list_from(), None)]
        return [Segment(self.list_from(), None)]

    def _warn_about_gaps(self) -> None:
        newest = read_instant(self.state.get("newest_date"))
        if newest is not None and newest < self.window_start:
            self.report.warn(
                f"the previous run saw conversations up to {iso(newest)}, but the API now shows only "
                f"those since {iso(self.window_start)}: conversations between them were never loaded. "
                "Schedule runs at least every few days to avoid gaps.")
        lost = [cid for cid, date in self.pending.items() if self._when(date) < self.window_start]
        if lost:
            self.report.warn(f"{len(lost)} conversations left the 30-day window before their details "
                             f"could be loaded (e.g. {lost[0]})")
            for cid in lost:
                del self.pending[cid]
        for cid in [c for c, v in self.known.items() if self._when(v[1]) < self.window_start - WINDOW]:
            del self.known[cid]  # aged out long ago: cannot come back into the list

    # ---------------------------------------------------------------- fetching
    def _halt(self, reason: str) -> None:
        """Stops every per-conversation call of this run not sent yet."""
        with self._lock:
            if self.stopped is None:
                self.stopped = reason
        self._halted.set()

    def fetch_detail(self, listed: Listed) -> Detail:
        """The detail call with transcript and insights included (one quota unit, one request)."""
        cid = listed.id
        if self._halted.is_set():
            raise _NotSent()
        touched_before = self.quota.touched(cid)
        refused = self.quota.take(cid)
        if refused:
            self._halt(refused)
            raise _NotSent()
        try:
            return self._fetch(listed, touched_before)
        except RateLimitError as exc:  # the quota, our budget, or a wait too long for this run
            if isinstance(exc, QuotaExhausted) and exc.status == 429:
                self.quota.spend_at_server()
            self._halt(exc.message)
            raise

    def _fetch(self, listed: Listed, touched_before: bool) -> Detail:
        cid = listed.id
        while True:
            params = {"include_transcript": "true" if self.includes["transcripts"] else None,
                      "include_insights": "true" if self.includes["insights"] else None}
            try:
                answer = self.client.get(f"conversations/{cid}", params).body
                break
            except ScopeError as exc:
                if not self._drop_scope(exc):
                    raise
            except RateLimitError:
                if not touched_before:
                    self.quota.release(cid)  # refused, or never sent: the API did not count it
                raise
        conversation = read_dict(answer.get("conversation")) if isinstance(answer, dict) else None
        if conversation is None:
            raise _BadDetail(f"the detail answer has no conversation object ({describe(answer)}): not loaded")
        recording = None
        if self.includes["recordings"]:
            try:
                recording = self.client.get(f"conversations/{cid}/recording-url").body
            except NotFoundError:
                recording = None
            except ScopeError as exc:
                if not self._drop_scope(exc, fallback="recordings"):
                    raise
        return Detail(listed, conversation, recording if isinstance(recording, dict) else None)

    def _drop_scope(self, exc: ScopeError, fallback: str | None = None) -> bool:
        scope = exc.scope or fallback
        with self._lock:
            if scope not in self.includes:
                return False
            if not self.includes[scope]:
                return True  # another thread dropped it while this call was in flight: retry
            self.includes[scope] = False
        for table in SCOPE_TABLES.get(scope, []):
            self.report.skip(table, f"the token lacks the '{scope}' scope ({exc.message})")
        return True

    # ---------------------------------------------------------------- the run
    def _pages(self, segment: Segment) -> Iterator[Page]:
        return self.client.paginate(
            "conversations", paginator=CursorPaginator("pagination.next_cursor", "cursor",
                                                       has_more_path="pagination.has_more"),
            items_path="conversations",
            params={"limit": self.page_size, "from": iso(segment.frm),
                    "to": iso(segment.to) if segment.to else None})

    def run(self) -> Iterator[Any]:
        segments = self.plan()
        seen: set[str] = set()
        pages_out: list[list[dict]] = []
        newest = read_instant(self.state.get("newest_date"))

        def to_fetch() -> Iterator[Listed]:
            nonlocal newest
            for segment in segments:
                try:
                    for page in self._pages(segment):
                        listed = read_list_page(page.items, segment.frm, self.report)
                        good = []
                        for item in listed:
                            seen.add(item.id)
                            if item.date is not None:  # an unreadable date never moves a cursor
                                newest = item.date if newest is None else max(newest, item.date)
                                segment.lowest = item.date if segment.lowest is None else min(segment.lowest, item.date)
                            if self._is_new_version(item):
                                report_problems(self.report, "conversations", item.id, item.problems)
                                good.append(item.row)
                        if good:
                            pages_out.append(good)
                        for item in listed:
                            if item.status == "completed" and item.id in self.pending \
                                    and item.id not in self.queued and not self._halted.is_set():
                                self.queued.add(item.id)
                                yield item
                except RateLimitError as exc:  # a list call met a rate limit, the quota or the budget
                    self.cut, self.cut_reason = segment, exc.message
                    self._halt(f"the conversations list was cut: {exc.message}")
                    return
            self.listing_complete = True

        details: list[Detail] = []
        results = map_ordered(self.fetch_detail, to_fetch(), self.client.settings.concurrency)
        for item, result in results:
            self._settle(item, result, details)
            while pages_out:
                yield pages_out.pop(0)
            if len(details) >= DETAIL_BATCH:
                yield from self._child_rows(details)
                details = []
        while pages_out:
            yield pages_out.pop(0)
        yield from self._child_rows(details)
        self._save(newest, seen)

    def _save(self, newest: datetime | None, seen: set[str]) -> None:
        """State and the run's summary, once everything fetched was yielded."""
        self.quota.save()
        if newest is not None:
            self.state["newest_date"] = iso(newest)
        revive(self.source_state, "conversations", seen)
        if self.cut is not None:
            # the unread stretch: from the cut stretch's start up to the lowest date it read
            to = self.cut.lowest or self.cut.to
            self.state["unlisted"] = {"from": iso(self.cut.frm), "to": iso(to) if to else None}
            self.report.wait("conversations (list)",
                             f"conversations dated {iso(self.cut.frm)} to {iso(to) if to else 'now'} are not "
                             f"listed yet ({self.cut_reason}); the next run lists them first")
            if self.sweep:
                self.report.warn("the sweep was cut before the end of the list: no deletions are marked "
                                 "this run; the next complete sweep marks them")
        elif self.listing_complete:
            self.state.pop("unlisted", None)
            if self.sweep:
                self._mark_deletions(seen)
                mark_swept(self.state, self.now)
        if self.stopped:
            self.report.warn(f"stopped after {self.fetched} conversations: {self.stopped}")
        if self.pending:
            why = self.stopped or "still processing at the vendor, or their fetch failed"
            self.report.wait("conversations", f"{len(self.pending)} conversations owe details ({why})")

    def _is_new_version(self, item: Listed) -> bool:
        """Records the row's version; True when it is new or changed (so it is loaded)."""
        known = self.known.get(item.id)
        if known is not None and known[0] == item.updated:
            return False
        filed = iso(item.book_date) if item.book_date else None
        self.known[item.id] = [item.updated, filed]
        if item.status in ("completed", "processing"):
            self.pending[item.id] = filed  # details owed, now or once processed
        else:  # failed (or a status we do not know): nothing more to fetch
            self.pending.pop(item.id, None)
        return True

    def _settle(self, item: Listed, result: Detail | BaseException, details: list[Detail]) -> None:
        cid = item.id
        if isinstance(result, Detail):
            details.append(result)
            self.pending.pop(cid, None)
            self.fetched += 1
        elif isinstance(result, _NotSent | RateLimitError):
            pass  # stays pending; the stop was recorded when it happened
        elif isinstance(result, _BadDetail):
            self.report.bad_record("summaries", cid, str(result), loaded=False)
            self.pending.pop(cid, None)
        elif isinstance(result, AuthError):
            raise result
        elif isinstance(result, NotFoundError):
            self.pending.pop(cid, None)
            self.known.pop(cid, None)
            record_deletions(self.source_state, "conversations", [cid], self.now)
        elif isinstance(result, MeetingEltError):
            self.report.warn(f"conversation {cid}: details not loaded, retried next run: {result}")
        else:
            raise result

    def _child_rows(self, details: list[Detail]) -> Iterator[Any]:
        if not details:
            return
        tables: dict[str, list] = {"summaries": [], SEGMENTS: [], "insights": [],
                                   "conversation_topics": [], "recording_urls": []}
        for d in details:
            shaped = shape_or_none(self.report, "summaries", d.listed.id, self._shape, d)
            for table, rows in (shaped or {}).items():
                tables[table].extend(rows)
        if tables["summaries"]:
            yield dlt.mark.with_table_name(tables["summaries"], "summaries")
        if tables[SEGMENTS]:
            yield dlt.mark.with_table_name(segments_table(tables[SEGMENTS], self.report), SEGMENTS)
        for table in ("insights", "conversation_topics", "recording_urls"):
            if tables[table]:
                yield dlt.mark.with_table_name(tables[table], table)

    def _shape(self, d: Detail) -> dict[str, list]:
        """The rows of one conversation's details, by table; malformed parts are named."""
        cid, conv = d.listed.id, d.conversation
        summary = conv.get("summary")
        if summary is not None and not isinstance(summary, str):
            self.report.bad_record("summaries", cid, f"summary={describe(summary)} is not text: loaded as sent",
                                   loaded=True)
        out: dict[str, list] = {
            "summaries": [{"conversation_id": cid, "summary": summary,
                           "updated_at": read_instant(conv.get("updated_at")) or read_instant(d.listed.updated)}],
            SEGMENTS: [], "insights": [], "conversation_topics": [], "recording_urls": []}
        if self.includes["transcripts"] or "transcript" in conv:
            origin = d.listed.date or read_instant(conv.get("date"))
            rows = transcript_rows(cid, origin, conv.get("transcript"), self.report)
            if rows is None:
                self.report.bad_record(SEGMENTS, cid, "transcript in an unknown shape: not loaded "
                                       f"({describe(conv.get('transcript'))})", loaded=False)
            else:
                out[SEGMENTS] = rows
        out["insights"] = insight_rows(cid, conv.get("insights"), self.report)
        out["conversation_topics"] = topic_rows(cid, conv.get("topics"), self.report)
        if d.recording and d.recording.get("recording_url"):
            out["recording_urls"] = [{k: v for k, v in d.recording.items() if k != "_meta"}
                                     | {"conversation_id": cid}]
        return out

    def _mark_deletions(self, seen: set[str]) -> None:
        edge = self.window_start + DELETION_MARGIN
        candidates = {cid for cid, (_, date) in self.known.items() if self._when(date) >= edge}
        candidates |= {cid for cid, date in self.pending.items() if self._when(date) >= edge}
        if not seen and candidates:
            self.report.warn(f"the sweep listed no conversations while {len(candidates)} are known in the "
                             "window: refusing to mark any as deleted (check the token's account)")
            return
        gone = candidates - seen
        for cid in gone:
            self.known.pop(cid, None)
            self.pending.pop(cid, None)
        if gone:
            new = record_deletions(self.source_state, "conversations", gone, self.now)
            self.report.warn(f"{new} conversations were deleted at the vendor; marked with deleted_at")
