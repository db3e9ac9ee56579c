"""Incremental sync of conversations and everything hanging off each one.

Between sweeps a run lists only the recent end of the 30-day window (back to the newest
conversation already seen, less `LOOKBACK`, or to the oldest pending one), and calls the
per-conversation endpoint only for conversations that are `completed` and new or changed
(`updated_at` moved). A sweep lists the whole window, which also reveals deletions.

Resource state:
    known:    {id: [updated_at, date]} the version of every conversation row loaded
    pending:  {id: date} conversations owed details (processing, quota, failed fetch)
    newest_date, last_sweep_at

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
    RateLimitError,
    ScopeError,
)
from .._common.http import ApiClient
from .._common.paginators import CursorPaginator
from .._common.report import RunReport
from .._common.state import mark_swept, record_deletions, revive, sweep_due
from .._common.timeutil import iso, parse_instant
from .._common.transcripts import TABLE as SEGMENTS
from .._common.transcripts import segments_table
from .helpers import transcript_rows
from .settings import DELETION_MARGIN, DETAIL_BATCH, LOOKBACK, SCOPE_TABLES, WINDOW, WINDOW_SAFETY


@dataclass
class Detail:
    item: dict
    conversation: dict
    recording: dict | None


class ConversationSync:
    """One run over the conversations list; `run()` yields pages for several tables."""

    def __init__(self, client: ApiClient, report: RunReport, *, now: datetime,
                 start_date: datetime | None, sweep_interval_hours: float, page_size: int,
                 include_recordings: bool, state: dict, source_state: dict) -> None:
        self.client, self.report, self.now = client, report, now
        self.state, self.source_state = state, source_state
        self.known: dict[str, list] = state.setdefault("known", {})
        self.pending: dict[str, str] = state.setdefault("pending", {})
        self.page_size = page_size
        self.window_start = now - WINDOW + WINDOW_SAFETY
        self.earliest = max(self.window_start, start_date) if start_date else self.window_start
        self.sweep = sweep_due(state, sweep_interval_hours, now)
        self.includes = {"transcripts": True, "insights": True, "recordings": include_recordings}
        self._lock = threading.Lock()
        self.stopped: str | None = None  # why per-conversation calls stopped
        self.listing_complete = False
        self.fetched = 0

    # ---------------------------------------------------------------- planning
    def list_from(self) -> datetime:
        """Where this run's listing starts."""
        self._warn_about_gaps()
        if self.sweep or not self.state.get("newest_date"):
            return self.earliest
        start = parse_instant(self.state["newest_date"]) - LOOKBACK
        for date in self.pending.values():
            start = min(start, parse_instant(date))
        return max(start, self.earliest)

    def _warn_about_gaps(self) -> None:
        newest = parse_instant(self.state.get("newest_date"))
        if newest is not None and newest < self.window_start:
            self.report.warn(
                f"the previous run saw conversations up to {iso(newest)}, but the API now shows only "
                f"those since {iso(self.window_start)}: conversations between them were never loaded. "
                "Schedule runs at least every few days to avoid gaps.")
        lost = [cid for cid, date in self.pending.items() if parse_instant(date) < self.window_start]
        if lost:
            self.report.warn(f"{len(lost)} conversations left the 30-day window before their details "
                             f"could be loaded (e.g. {lost[0]})")
            for cid in lost:
                del self.pending[cid]
        for cid in [c for c, (_, d) in self.known.items() if parse_instant(d) < self.window_start - WINDOW]:
            del self.known[cid]  # aged out long ago: cannot come back into the list

    # ---------------------------------------------------------------- fetching
    def fetch_detail(self, item: dict) -> Detail:
        """The detail call with transcript and insights included (one quota unit, one request)."""
        cid = item["id"]
        while True:
            params = {"include_transcript": "true" if self.includes["transcripts"] else None,
                      "include_insights": "true" if self.includes["insights"] else None}
            try:
                body = self.client.get(f"conversations/{cid}", params).body["conversation"]
                break
            except ScopeError as exc:
                if not self._drop_scope(exc):
                    raise
        recording = None
        if self.includes["recordings"]:
            try:
                recording = self.client.get(f"conversations/{cid}/recording-url").body
            except NotFoundError:
                recording = None
            except ScopeError as exc:
                if not self._drop_scope(exc, fallback="recordings"):
                    raise
        return Detail(item, body, recording)

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
    def run(self) -> Iterator[Any]:
        frm = self.list_from()
        seen: set[str] = set()
        pages_out: list[list[dict]] = []
        newest = parse_instant(self.state.get("newest_date"))

        def to_fetch() -> Iterator[dict]:
            nonlocal newest
            pages = self.client.paginate(
                "conversations", paginator=CursorPaginator("pagination.next_cursor", "cursor",
                                                           has_more_path="pagination.has_more"),
                items_path="conversations", params={"limit": self.page_size, "from": iso(frm)})
            for page in pages:
                good = []
                for item in page.items:
                    if not isinstance(item, dict) or not item.get("id") or not item.get("date"):
                        self.report.warn(f"skipped a malformed conversation in the list: {str(item)[:200]}")
                        continue
                    seen.add(item["id"])
                    date = parse_instant(item["date"])
                    newest = date if newest is None or date > newest else newest
                    if self._is_new_version(item):
                        good.append(item)
                if good:
                    pages_out.append(good)
                for item in page.items:
                    if isinstance(item, dict) and item.get("status") == "completed" \
                            and item.get("id") in self.pending and not self.stopped:
                        yield item
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
        if newest is not None:
            self.state["newest_date"] = iso(newest)
        revive(self.source_state, "conversations", seen)
        if self.sweep and self.listing_complete:
            self._mark_deletions(seen)
            mark_swept(self.state, self.now)
        if self.pending:
            why = self.stopped or "still processing at the vendor, or their fetch failed"
            self.report.wait("conversations", f"{len(self.pending)} conversations owe details ({why})")

    def _is_new_version(self, item: dict) -> bool:
        """Records the row's version; True when it is new or changed (so it is loaded)."""
        cid, updated = item["id"], item.get("updated_at")
        known = self.known.get(cid)
        if known is not None and known[0] == updated:
            return False
        self.known[cid] = [updated, item["date"]]
        if item.get("status") in ("completed", "processing"):
            self.pending[cid] = item["date"]  # details owed, now or once processed
        else:  # failed (or a status we do not know): nothing more to fetch
            self.pending.pop(cid, None)
        return True

    def _settle(self, item: dict, result: Detail | BaseException, details: list[Detail]) -> None:
        cid = item["id"]
        if isinstance(result, Detail):
            details.append(result)
            self.pending.pop(cid, None)
            self.fetched += 1
            return
        if isinstance(result, AuthError):
            raise result
        if isinstance(result, RateLimitError):  # the quota, our budget, or a very long wait
            if not self.stopped:
                self.stopped = f"stopped after {self.fetched} conversations: {result.message}"
                self.report.warn(self.stopped)
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
        summaries, segments, insights, topics, recordings = [], [], [], [], []
        for d in details:
            cid, conv = d.item["id"], d.conversation
            summaries.append({"conversation_id": cid, "summary": conv.get("summary"),
                              "updated_at": conv.get("updated_at", d.item.get("updated_at"))})
            if self.includes["transcripts"] or "transcript" in conv:
                rows = transcript_rows(cid, d.item.get("date"), conv.get("transcript"))
                if rows is None:
                    self.report.warn(f"conversation {cid}: transcript in an unknown shape, not loaded: "
                                     f"keys {sorted(conv['transcript'])[:5]}")
                else:
                    segments.extend(rows)
            for insight in conv.get("insights") or []:
                if isinstance(insight, dict) and insight.get("id"):
                    insights.append({**insight, "conversation_id": cid})
                else:
                    self.report.warn(f"conversation {cid}: insight without an id, not loaded: {str(insight)[:120]}")
            for topic in conv.get("topics") or []:
                if isinstance(topic, dict) and topic.get("name") is not None:
                    topics.append({**topic, "conversation_id": cid})
                else:
                    self.report.warn(f"conversation {cid}: topic without a name, not loaded: {str(topic)[:120]}")
            if d.recording and d.recording.get("recording_url"):
                recordings.append({k: v for k, v in d.recording.items() if k != "_meta"}
                                  | {"conversation_id": cid})
        yield dlt.mark.with_table_name(summaries, "summaries")
        if segments:
            yield dlt.mark.with_table_name(segments_table(segments), SEGMENTS)
        if insights:
            yield dlt.mark.with_table_name(insights, "insights")
        if topics:
            yield dlt.mark.with_table_name(topics, "conversation_topics")
        if recordings:
            yield dlt.mark.with_table_name(recordings, "recording_urls")

    def _mark_deletions(self, seen: set[str]) -> None:
        edge = self.window_start + DELETION_MARGIN
        candidates = {cid for cid, (_, date) in self.known.items() if parse_instant(date) >= edge}
        candidates |= {cid for cid, date in self.pending.items() if parse_instant(date) >= edge}
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
