"""Incremental sync of meetings and everything hanging off each one.

The list has no updated-at and its date filters are whole days, so each organization is
read with a day cursor: between sweeps, meetings created since the newest one already seen
(less `OVERLAP_DAYS`), plus, for unfinished meetings created earlier that are now due, the
days since the earliest of them started. A sweep reads the whole list (from `start_date`),
which also reveals renames and deletions. Rows are merged on `id`.

A list item whose content changed is loaded with its detail and participants. Transcripts,
summaries (with what summary-with-video/ adds) and (if asked) recordings are fetched once
their stage status is `completed`, and owed calls that failed are retried on the next run
without re-listing.

Meetings of older builds carry no stage objects. For them the meeting's `status` (`past`:
ended) and `summary_complete` are the signals: the transcript is fetched once the meeting
has ended, the summary once it is complete. Their transcript answers an empty list until it
is done, so an empty one is not taken as final while the summary is not complete: it is
fetched again after growing intervals (`RECHECK_*`), at once when the list item changes,
and the meeting stays pending (re-listed) until its transcript and summary are in.

Resource state, per organization (`orgs[<id>]`):
    known:   {meeting_id: [list-item hash, created day, flags, participants hash]}
    pending: {meeting_id: start day} of meetings not finished at the vendor
    recheck: {meeting_id: [checks, next check at | "never", first check at]} of meetings
             without stages whose transcript was still empty
    newest_created, last_sweep_at
and `recordings`: {meeting_id: hash without signed URLs}.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import dlt

from .._common.concurrency import map_ordered
from .._common.errors import AuthError, MeetingEltError, NotFoundError, RateLimitError, ScopeError
from .._common.http import ApiClient
from .._common.paginators import NextUrlPaginator
from .._common.records import Problems, read_instant, report_problems, shape_or_none
from .._common.report import RunReport
from .._common.state import mark_swept, record_deletions, revive, row_hash, sweep_due
from .._common.timeutil import iso
from .._common.transcripts import TABLE as SEGMENTS
from .._common.transcripts import segments_table
from . import helpers as h
from .settings import (
    DETAIL_BATCH,
    FINISHED_STATUS,
    MEETINGS,
    OVERLAP_DAYS,
    PENDING_CHASE_DAYS,
    RECHECK_FIRST,
    RECHECK_FOR,
    RECHECK_MAX_INTERVAL,
    STAGE_WAITING,
    SUMMARY_WITH_VIDEO,
)

# flags: which stages the list shows completed (READY), which were fetched for that
# completion (DONE = READY << 3), whether detail + participants are owed, and whether the
# meeting comes from a build without stage objects
READY = {"transcript": 1, "summary": 2, "recording": 4}
DONE_SHIFT = 3
DETAIL_OWED = 64
NO_STAGES = 128
TEXTS = READY["transcript"] | READY["summary"]
NEVER = "never"  # a re-check that will not come: sorts after every ISO instant
PARTS = ("detail", "participants", "transcript", "summary", "recording")


@dataclass
class Work:
    org: int
    mid: str
    item: dict | None  # the list item when listed this run
    wants: tuple[str, ...]


@dataclass
class Fetched:
    bodies: dict[str, Any] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)  # answered 404
    refused: dict[str, MeetingEltError] = field(default_factory=dict)  # answered 403
    errors: dict[str, MeetingEltError] = field(default_factory=dict)


@dataclass
class OrgRun:
    sweep: bool
    seen: set[str] = field(default_factory=set)
    submitted: set[str] = field(default_factory=set)
    complete: bool = True  # every page of every range was read
    shifted: bool = False  # the list changed while it was paged


def _day(value: object) -> str | None:
    instant = read_instant(value)
    return instant.date().isoformat() if instant else None


def _vendor_id(mid: str) -> int | str:
    """The meeting id as the API types it (an integer), from its state key."""
    return int(mid) if mid.isdigit() else mid


class MeetingSync:
    """One run over the meeting lists of the selected organizations."""

    def __init__(self, client: ApiClient, report: RunReport, *, orgs: list[int], now: datetime,
                 start_day: date | None, sweep_interval_hours: float, page_size: int,
                 include_recordings: bool, state: dict, source_state: dict) -> None:
        self.client, self.report, self.now = client, report, now
        self.orgs, self.start_day, self.page_size = orgs, start_day, page_size
        self.include_recordings = include_recordings
        self.interval = sweep_interval_hours
        self.state, self.source_state = state, source_state
        self.recording_hashes: dict[str, str] = state.setdefault("recordings", {})
        self.runs: dict[int, OrgRun] = {}
        self.stopped: str | None = None
        self.rows: dict[str, list] = {}

    def org_state(self, org: int) -> dict:
        ostate = self.state.setdefault("orgs", {}).setdefault(str(org), {})
        ostate.setdefault("known", {})
        ostate.setdefault("pending", {})
        ostate.setdefault("recheck", {})
        return ostate

    # ---------------------------------------------------------------- planning
    def ranges(self, org: int, sweep: bool) -> list[dict[str, Any]]:
        """The list filters this run reads for `org` (whole days, inclusive)."""
        ostate = self.org_state(org)
        start = self.start_day.isoformat() if self.start_day else None
        newest = ostate.get("newest_created")
        if sweep or not newest:
            return [{"created_after": start}]
        a_from = date.fromisoformat(newest) - timedelta(days=OVERLAP_DAYS)
        if self.start_day:
            a_from = max(a_from, self.start_day)
        ranges: list[dict[str, Any]] = [{"created_after": a_from.isoformat()}]
        today, chase_from = self.now.date(), (self.now - timedelta(days=PENDING_CHASE_DAYS)).date().isoformat()
        known, due, stale = ostate["known"], [], 0
        for mid, start_day in ostate["pending"].items():
            created = (known.get(mid) or [None, None])[1] or ""
            if start_day is None or start_day > today.isoformat() or created >= a_from.isoformat():
                continue
            if start_day < chase_from:
                stale += 1
            else:
                due.append(start_day)
        if due:
            ranges.append({"start_after": (date.fromisoformat(min(due)) - timedelta(days=1)).isoformat(),
                           "created_before": (a_from - timedelta(days=1)).isoformat(), "created_after": start})
        if stale:
            self.report.wait(f"meetings/{org}", f"{stale} meetings unfinished for over {PENDING_CHASE_DAYS} "
                                                "days are re-checked by the next sweep")
        return ranges

    def wants(self, flags: int, recheck: list | None = None) -> tuple[str, ...]:
        """The calls owed; an empty transcript waiting for its re-check is not owed before it."""
        out = ["detail", "participants"] if flags & DETAIL_OWED else []
        missing = flags & 7 & ~(flags >> DONE_SHIFT)
        for part in ("transcript", "summary", "recording"):
            if part == "transcript" and recheck and recheck[1] > iso(self.now):
                continue
            if missing & READY[part] and (part != "recording" or self.include_recordings):
                out.append(part)
        return tuple(out)

    def owed(self, ostate: dict, mid: str) -> tuple[str, ...]:
        return self.wants(ostate["known"][mid][2], ostate["recheck"].get(mid))

    def recheck_later(self, ostate: dict, mid: str) -> None:
        """An empty transcript of a meeting without stages: fetched again after a growing
        interval, until `RECHECK_FOR` after the first check (then when the list item changes)."""
        checks, _, first = ostate["recheck"].get(mid) or [0, None, iso(self.now)]
        interval = min(RECHECK_FIRST * 2 ** min(checks, 16), RECHECK_MAX_INTERVAL)
        since = read_instant(first)
        give_up = since is not None and self.now + interval - since > RECHECK_FOR
        ostate["recheck"][mid] = [checks + 1, NEVER if give_up else iso(self.now + interval), first]

    # ---------------------------------------------------------------- listing
    def pages(self, org: int, run: OrgRun, params: dict) -> Iterator[list]:
        counts: set[Any] = set()
        try:
            for page in self.client.paginate(
                    MEETINGS, paginator=NextUrlPaginator("next"), items_path="results",
                    params={"organization_id": org, "size": self.page_size, **params}):
                counts.add(page.response.body.get("count") if isinstance(page.response.body, dict) else None)
                yield page.items
        except NotFoundError:  # "Invalid page.": the list shrank while it was paged
            if not counts:
                raise
            run.shifted = True
        if len(counts) > 1:
            run.shifted = True

    def observe(self, org: int, item: dict) -> bool:
        """Records a list item; True when it is new or changed (then it is loaded)."""
        ostate = self.org_state(org)
        mid, digest = str(item["id"]), row_hash(item)
        entry = ostate["known"].get(mid)
        if entry is not None and entry[0] == digest:
            return False
        ready = ((READY["transcript"] if h.transcript_ready(item) else 0)
                 | (READY["summary"] if h.summary_ready(item) else 0)
                 | (READY["recording"] if h.recording_ready(item) else 0))
        done = ((entry[2] if entry else 0) >> DONE_SHIFT) & ready  # a stage run again is fetched again
        flags = ready | done << DONE_SHIFT | DETAIL_OWED | (0 if h.has_stages(item) else NO_STAGES)
        ostate["known"][mid] = [digest, _day(item.get("created_at")), flags, entry[3] if entry else None]
        ostate["recheck"].pop(mid, None)  # the item changed: what it owes is fetched now
        if h.status(item) != FINISHED_STATUS:
            unfinished = True
        elif flags & NO_STAGES:  # until its transcript and summary are in
            unfinished = (done & TEXTS) != TEXTS
        else:
            unfinished = any(h.stage(item, s) in STAGE_WAITING for s in h.STAGES)
        if unfinished:
            ostate["pending"][mid] = _day(item.get("start_time"))
        else:
            ostate["pending"].pop(mid, None)
        return True

    def work(self) -> Iterator[Work]:
        """Changed meetings as the lists reveal them, then calls owed from earlier runs."""
        for org in self.orgs:
            ostate = self.org_state(org)
            run = self.runs[org] = OrgRun(sweep_due(ostate, self.interval, self.now))
            if self.stopped:
                run.complete = False
                continue
            try:
                yield from self.list_org(org, run)
            except ScopeError as exc:
                run.complete = False
                self.report.warn(f"organization {org}: meetings not loaded: {exc.message}")
                continue
            except RateLimitError as exc:  # our request budget, or a very long wait
                run.complete = False
                self.stop(exc)
                continue
            for mid in list(ostate["known"]):
                wants = self.owed(ostate, mid)
                if wants and mid not in run.submitted and not self.stopped:
                    yield Work(org, mid, None, wants)

    def list_org(self, org: int, run: OrgRun) -> Iterator[Work]:
        ostate = self.org_state(org)
        newest = ostate.get("newest_created")
        for params in self.ranges(org, run.sweep):
            for items in self.pages(org, run, params):
                for item in items:
                    if not isinstance(item, dict) or not isinstance(item.get("id"), int | str):
                        self.report.warn(f"organization {org}: skipped a malformed meeting: {str(item)[:200]}")
                        continue
                    item = {**item, "organization_id": item.get("organization_id") or org}
                    mid = str(item["id"])
                    newest = max(newest or "", _day(item.get("created_at")) or "") or None
                    if mid in run.seen:
                        continue  # the list moved under us: seen on the previous page
                    run.seen.add(mid)
                    if self.observe(org, item) and not self.stopped:
                        run.submitted.add(mid)
                        yield Work(org, mid, item, self.owed(ostate, mid))
        if newest:  # only once the listing is whole: a cut one may have missed newer days
            ostate["newest_created"] = newest

    def stop(self, exc: RateLimitError) -> None:
        if not self.stopped:
            self.stopped = f"stopped: {exc.message}"
            self.report.warn(f"{self.stopped}; what was fetched is loaded, the next run continues")

    # ---------------------------------------------------------------- fetching
    def fetch(self, work: Work) -> Fetched:
        """The per-meeting calls owed; runs in a worker thread, touches no state."""
        out = Fetched()
        base = f"{MEETINGS}{work.mid}/"
        for part in work.wants:
            try:
                body = self.client.get(base if part == "detail" else f"{base}{part}/").body
                if not isinstance(body, dict):
                    raise MeetingEltError(f"expected an object, got {type(body).__name__}")
                out.bodies[part] = body
                if part == "summary":
                    self.fetch_summary_video(base, out)
            except NotFoundError:
                out.missing.add(part)
                if part == "detail":
                    break
            except ScopeError as exc:
                out.refused[part] = exc
            except (AuthError, RateLimitError):
                raise
            except MeetingEltError as exc:
                out.bodies.pop(part, None)  # a summary whose summary-with-video failed: both again
                out.errors[part] = exc
        return out

    def fetch_summary_video(self, base: str, out: Fetched) -> None:
        """summary-with-video/, with every summary (re)load: one request. A build without the
        endpoint (404) or a refusal loads the summary alone; any other failure retries both."""
        try:
            body = self.client.get(f"{base}{SUMMARY_WITH_VIDEO}").body
        except (NotFoundError, ScopeError):
            return
        if isinstance(body, dict):
            out.bodies["summary_video"] = body

    def run(self) -> Iterator[Any]:
        for work, result in map_ordered(self.fetch, self.work(), self.client.settings.concurrency):
            self.settle(work, result)
            if len(self.rows.get("meetings", [])) + len(self.rows.get("summaries", [])) >= DETAIL_BATCH:
                yield from self.flush()
        yield from self.flush()
        for org, run in self.runs.items():
            self.finish(org, run)

    def settle(self, work: Work, result: Fetched | BaseException) -> None:
        if isinstance(result, RateLimitError):  # our request budget, or a very long wait
            self.stop(result)
            return
        if isinstance(result, BaseException):
            raise result
        ostate, mid, org = self.org_state(work.org), work.mid, work.org
        entry = ostate["known"].get(mid)
        if entry is None:
            return
        if "detail" in result.missing:  # deleted at the vendor since it was listed
            ostate["known"].pop(mid, None)
            ostate["pending"].pop(mid, None)
            ostate["recheck"].pop(mid, None)
            self.runs[org].seen.discard(mid)
            record_deletions(self.source_state, "meetings", [mid], self.now)
            return
        flags, bodies, add, report = entry[2], result.bodies, self.rows.setdefault, self.report
        if "detail" in bodies:
            problems = Problems()
            row = shape_or_none(report, "meetings", mid, h.meeting_row, work.item, bodies["detail"], org, problems)
            if row is not None:
                report_problems(report, "meetings", mid, problems)
                add("meetings", []).append(row)
        if "participants" in bodies:
            people = h.participant_rows(_vendor_id(mid), org, bodies["participants"])
            if row_hash(people) != entry[3]:  # loaded again only when they changed
                entry[3] = row_hash(people)
                add("participants", []).extend(people)
        if {"detail", "participants"} <= set(bodies) | result.missing | set(result.refused):
            flags &= ~DETAIL_OWED
        if "transcript" in bodies:
            shaped = shape_or_none(report, SEGMENTS, mid, h.transcript_rows, _vendor_id(mid), org,
                                   bodies["transcript"], report)
            segments, summary = shaped or ([], None)
            # without stages an empty answer may only mean "not done yet": final once the
            # summary is complete (it comes after the transcript)
            if flags & NO_STAGES and not segments and not flags & READY["summary"] and shaped:
                self.recheck_later(ostate, mid)
                bodies = {k: v for k, v in bodies.items() if k != "transcript"}
            else:
                ostate["recheck"].pop(mid, None)
                add(SEGMENTS, []).extend(segments)
                if summary is not None:
                    add("transcripts", []).append(summary)
        if "summary" in bodies:
            problems = Problems()
            row = shape_or_none(report, "summaries", mid, h.summary_row, _vendor_id(mid), org,
                                bodies["summary"], problems, bodies.get("summary_video"))
            if row is not None:
                report_problems(report, "summaries", mid, problems)
                add("summaries", []).append(row)
        if "recording" in bodies:
            row = h.recording_row(_vendor_id(mid), org, bodies["recording"])
            digest = h.recording_hash(row)
            if self.recording_hashes.get(mid) != digest:  # a new signed URL alone changes nothing
                self.recording_hashes[mid] = digest
                add("recordings", []).append(row)
        for part in ("transcript", "summary", "recording"):
            if part in bodies or part in result.missing or part in result.refused:
                flags |= READY[part] << DONE_SHIFT
        for part, exc in {**result.refused, **result.errors}.items():
            retry = "retried next run" if part in result.errors else "not retried"
            self.report.warn(f"meeting {mid}: {part} not loaded ({retry}): {exc.message}")
        entry[2] = flags
        if flags & NO_STAGES and (flags >> DONE_SHIFT) & TEXTS == TEXTS:
            ostate["pending"].pop(mid, None)  # its transcript and summary are in

    def flush(self) -> Iterator[Any]:
        rows, self.rows = self.rows, {}
        for table, batch in rows.items():
            if batch and table == "meetings":
                yield batch  # the resource's own table: unmarked, so its column hints apply
            elif batch:
                yield dlt.mark.with_table_name(segments_table(batch, self.report) if table == SEGMENTS
                                               else batch, table)

    def finish(self, org: int, run: OrgRun) -> None:
        ostate = self.org_state(org)
        revive(self.source_state, "meetings", run.seen)
        owed = sum(1 for mid in ostate["known"] if self.owed(ostate, mid))
        if owed:
            why = self.stopped or "a call failed; retried next run"
            self.report.wait(f"meetings/{org}", f"{owed} meetings owe calls ({why})")
        rechecks = [r for mid, r in ostate["recheck"].items() if mid in ostate["known"]]
        if rechecks:
            given_up = sum(1 for r in rechecks if r[1] == NEVER)
            self.report.wait(f"transcripts/{org}", f"{len(rechecks)} meetings without stage objects have an empty "
                             f"transcript so far: fetched again later ({given_up} only once their summary "
                             "completes)")
        if not run.sweep:
            return
        if not run.complete or run.shifted or self.stopped:
            self.report.warn(f"organization {org}: the sweep's listing was incomplete or moved while "
                             "it was read; deletions are checked on the next run")
            return
        floor = self.start_day.isoformat() if self.start_day else ""
        candidates = {mid for mid, entry in ostate["known"].items() if (entry[1] or "") > floor}
        if candidates and not run.seen:
            self.report.warn(f"organization {org}: the sweep listed no meetings while {len(candidates)} "
                             "are known: refusing to mark any as deleted")
            return
        gone = candidates - run.seen
        for mid in gone:
            ostate["known"].pop(mid, None)
            ostate["pending"].pop(mid, None)
            ostate["recheck"].pop(mid, None)
        if gone:
            new = record_deletions(self.source_state, "meetings", gone, self.now)
            self.report.warn(f"organization {org}: {new} meetings were deleted at the vendor; marked with deleted_at")
        mark_swept(ostate, self.now)
