"""Conversations, calendar events and webhooks on the engine: what each record owes, the
per-item calls, and the rows.

A conversation that has ended and has segments owes its transcript (fetched again only when
`segmentCount` changes: the parts' version), then its keypoints, and its feedback when it
has `FEEDBACK_MIN_SEGMENTS` segments or more. The work is ordered: every transcript first,
newest first, then every keypoints/feedback check, newest first, so a tight hour goes to
what users look at. One still recording (no `endTime`) or not transcribed yet (no
segments) owes nothing and waits: the listing reaches back to it.

Keypoints and feedback cost AI credits to create, so they are read with `GET`; a 404 means
"not generated yet": the part is owed again on a back-off (1 h, 2 h, … a day) while the
conversation is younger than `ai_recheck_days`, after which it is checked no more. Only
with `ai_generation_budget` > 0, and right after a `GET` said 404 (so a cached result is
never paid for), a `POST` generates it, while the month's credits and the plan's allowance
last (`quota.Credits`).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from .._common.engine import Entity, Fetched, NotFound, Part, Ready, TableSpec, Work
from .._common.http import ApiClient, error_message
from .._common.ledger import row_hash
from .._common.records import describe, read_dict, read_instant, report_problems
from .._common.report import RunReport
from .._common.snapshots import id_of
from .._common.timeutil import iso, utc_now
from .._common.transcripts import TABLE as SEGMENTS
from .._common.transcripts import segments_table
from .helpers import (
    Listed,
    ai_data,
    error_code,
    event_start,
    feedback_row,
    generation_refused,
    keypoints_row,
    not_made_yet,
    transcript_rows,
    without_secrets,
)
from .quota import Credits
from .settings import (
    CHILD_BATCH,
    FEEDBACK_MIN_SEGMENTS,
    INSIGHT_KINDS,
    RECHECK_FIRST,
    RECHECK_MAX,
    TRANSCRIPT_RETRY,
)

REFUSED = object()  # a POST that Convo refused for this conversation: nothing to load, checked no more


class ConversationCalls:
    """The per-conversation calls of one run: transcripts, keypoints/feedback, generation."""

    def __init__(self, client: ApiClient, report: RunReport, *, recheck_days: float, budget: int) -> None:
        self.client, self.report = client, report
        self.recheck = timedelta(days=max(0.0, recheck_days))
        self.budget = budget
        self.now: datetime = utc_now()
        self.credits: Credits | None = None
        self.transcripts = 0  # fetched this run
        self.generated = 0
        self._lock = threading.Lock()

    def start(self, source_state: dict, now: datetime, plan_remaining: Any) -> None:
        """Once the profile is read: the run's clock and this month's credits."""
        self.now = now
        self.credits = Credits(source_state, self.budget, now, plan_remaining)

    # ---------------------------------------------------------------- transcripts
    def transcript(self, work: Work) -> list:
        body = self.client.get(f"conversations/{work.record_id}/transcript").body
        data = read_dict(body.get("data")) if isinstance(body, dict) else None
        segments = data.get("segments") if data else None
        if not isinstance(segments, list):
            raise ValueError(f"the transcript answer is not in the documented shape ({describe(body)})")
        with self._lock:
            self.transcripts += 1
        return segments

    # ---------------------------------------------------------------- keypoints, feedback
    def insight(self, kind: str) -> Any:
        """`GET` the kind; after a 404, generate it where the budget allows. Returns the
        answer, None when it is not there (yet), or `REFUSED`."""
        def fetch(work: Work) -> Any:
            path = f"conversations/{work.record_id}/{kind}"
            answer = self.client.get(path, accept=not_made_yet)
            return self._generate(work, kind, path) if not_made_yet(answer) else answer.body

        return fetch

    def _generate(self, work: Work, kind: str, path: str) -> Any:
        key = (work.record_id, kind)
        if self.credits is None or not self.credits.take(key):
            return None
        answer = self.client.request("POST", path, json={"forceRefresh": False}, accept=generation_refused)
        if not generation_refused(answer):
            self.credits.keep(key)
            with self._lock:
                self.generated += 1
            return answer.body
        self.credits.give_back(key)
        message = error_message(answer.body)
        if error_code(answer) == "ai_limit_exceeded":
            self.credits.stop(f"the plan's monthly AI generations are spent ({message})")
            self.report.warn(f"AI generation stopped: monthly AI generation limit reached: {message}")
            return None
        self.report.warn(f"conversation {work.record_id}: Convo refused to generate {kind}: {message}")
        return REFUSED

    def refused(self, kind: str) -> Any:
        """The engine's `refused` hook: a POST refused by the hour's budget made nothing."""
        def give_back(work: Work) -> None:
            if self.credits is not None:
                self.credits.give_back((work.record_id, kind))

        return give_back

    def judge(self, kind: str) -> Any:
        def verdict(work: Work, body: Any) -> Ready:
            if body is REFUSED:
                return Ready.NONE
            if ai_data(body) is not None:
                return Ready.READY
            if body is not None:  # an answer, but not in the documented shape
                self.report.warn(f"conversation {work.record_id}: {kind} in an unknown shape, not loaded: "
                                 f"{describe(body, 200)}")
            return Ready.NOT_READY if self._young(work) else Ready.NONE

        return verdict

    def _young(self, work: Work) -> bool:
        """Still within `ai_recheck_days` of its start: a missing kind is looked for again."""
        start = read_instant(work.day)
        return start is not None and self.now - start < self.recheck

    # ---------------------------------------------------------------- the report
    def report_left(self, owed: list[tuple[str, dict]], due: set[str]) -> None:
        transcripts = sum(1 for _, parts in owed if "transcript" in parts)
        if transcripts:
            self.report.wait("transcripts", f"{transcripts} conversations owe transcripts "
                             f"({self.transcripts} fetched this run)")
        checks = [rid for rid, parts in owed if "transcript" not in parts and set(parts) & set(INSIGHT_KINDS)]
        if checks:
            now = sum(1 for rid in checks if rid in due)
            self.report.wait("keypoints/feedback", f"{len(checks)} conversations to check again ({now} due "
                             "now, the rest on a back-off of up to a day)")
        if self.credits is not None and self.credits.budget:
            why = f"; {self.credits.exhausted}" if self.credits.exhausted else ""
            self.report.wait("ai credits", f"{self.credits.spent} of {self.credits.budget} spent this month "
                             f"({self.generated} this run){why}")


def conversation_entity(calls: ConversationCalls, report: RunReport) -> Entity:
    def wants(item: Listed) -> tuple[list[str], bool]:
        if item.start is None:
            return [], False  # cannot be placed in time: its segments could not be either
        if not item.ended or item.count == 0:
            return [], True  # still recording, or not transcribed yet
        feedback = item.count is None or item.count >= FEEDBACK_MIN_SEGMENTS
        return ["transcript", "keypoints", *(["feedback"] if feedback else [])], False

    def row(item: Listed) -> dict:
        report_problems(report, "conversations", item.id, item.problems)
        return item.row

    def segments(item: Listed) -> str:
        return "?" if item.count is None else str(item.count)

    insight_parts = tuple(
        Part(kind, (kind,), fetch=calls.insight(kind), judge=calls.judge(kind), refused=calls.refused(kind),
             priority=1, version=segments, retry_first=RECHECK_FIRST, retry_cap=RECHECK_MAX)
        for kind in INSIGHT_KINDS)
    return Entity(
        name="conversations", table="conversations",
        key=lambda item: item.id, version=lambda item: row_hash(item.row), day=lambda item: item.start,
        wants=wants, row=row, ordered=True, batch=CHILD_BATCH,
        parts=(Part("transcript", (SEGMENTS,), fetch=calls.transcript, not_found=NotFound.DELETED,
                    version=segments, retry_first=TRANSCRIPT_RETRY),
               *insight_parts),
    )


def conversation_tables(report: RunReport, hints: dict[str, dict]) -> list[TableSpec]:
    def segment_rows(fetched: Fetched) -> list[dict]:
        return transcript_rows(fetched.work.record_id, fetched.work.day, fetched.bodies["transcript"], report)

    def insight_rows(kind: str) -> Any:
        shape = keypoints_row if kind == "keypoints" else feedback_row
        return lambda f: [shape(f.work.record_id, ai_data(f.bodies[kind]), report)]

    return [
        TableSpec("conversations", hints=hints["conversations"]),
        TableSpec(SEGMENTS, part="transcript", shape=segment_rows, finish=lambda rows: segments_table(rows, report),
                  hints=hints[SEGMENTS]),
        *(TableSpec(kind, part=kind, shape=insight_rows(kind), hints=hints[kind]) for kind in INSIGHT_KINDS),
    ]


# ---------------------------------------------------------------------- calendar, webhooks
def calendar_entity(report: RunReport) -> Entity:
    def day(event: dict) -> str | None:
        start, _ = event_start(event)
        return iso(start) if start else None

    def row(event: dict) -> dict:
        start, problem = event_start(event)
        if problem:
            report.bad_record("calendar_events", str(event["id"]), f"{problem}: loaded as sent" + (
                "" if start else ", not placed in the window"), loaded=True)
        return event

    return Entity(name="calendar_events", table="calendar_events", key=id_of(), version=row_hash, day=day, row=row)


def webhooks_entity() -> Entity:
    """Every webhook at once; any `secret` field never reaches the table (nor its hash the ledger)."""
    return Entity(name="webhooks", table="webhooks", key=id_of(),
                  version=lambda hook: row_hash(without_secrets(hook)), row=without_secrets)
