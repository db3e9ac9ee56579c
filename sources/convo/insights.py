"""Keypoints and feedback: read what exists, re-check for a bounded time, generate on request.

Convo's AI results cost credits to create, so by default only `GET` is used: a 404 means
"not generated yet". A conversation is checked once its transcript is loaded, and a kind
that is missing is looked for again after 1h, 2h, 4h, … (capped at a day) until the
conversation is `ai_recheck_days` old. Generation (`POST`) happens only when
`ai_generation_budget` > 0, only right after a `GET` answered 404 in the same run (so a cached
result is never paid for), and only while this calendar month's spending is below the budget
and the plan's own allowance lasts.

Resource state `insights_due`: {conversation id: {"s": startTime, "k": kinds still missing,
"n": next check, "i": interval hours, "x": kinds Convo refused to generate}}.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dlt

from .._common.concurrency import map_ordered
from .._common.errors import (
    AuthError,
    BadRequestError,
    MeetingEltError,
    NotFoundError,
    RateLimitError,
)
from .._common.http import ApiClient
from .._common.records import read_int, shape_or_none
from .._common.report import RunReport
from .._common.timeutil import iso, parse_instant
from .helpers import AiLimitExceeded, feedback_row, keypoints_row
from .settings import CHILD_BATCH, FEEDBACK_MIN_SEGMENTS, INSIGHT_KINDS, RECHECK_FIRST, RECHECK_MAX

CREDITS_KEY = "ai_generation"  # source state: {"month": "YYYY-MM", "spent": n}
LETTER = {"keypoints": "k", "feedback": "f"}


@dataclass
class Checked:
    """One conversation's check: rows found, kinds still missing, kinds not reached."""

    rows: dict[str, dict] = field(default_factory=dict)
    missing: str = ""
    unchecked: str = ""
    stop: RateLimitError | None = None


class Credits:
    """This month's AI generation budget. Thread-safe; counts conservatively: one credit per
    POST sent, even when Convo answers that the result was cached (a retried POST may have
    spent the credit on its first attempt)."""

    def __init__(self, source_state: dict, budget: int, now: datetime, plan_remaining: Any) -> None:
        month = now.strftime("%Y-%m")
        book = source_state.setdefault(CREDITS_KEY, {})
        if book.get("month") != month:
            book.clear()
            book.update(month=month, spent=0)
        self.book, self.budget = book, max(0, int(budget or 0))
        self.plan_remaining = read_int(plan_remaining)  # None: unlimited (Enterprise) or unknown
        self.exhausted: str | None = None
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.exhausted or self.book["spent"] >= self.budget:
                return False
            if self.plan_remaining is not None and self.plan_remaining <= 0:
                self.exhausted = "the plan's monthly AI generations are spent"
                return False
            self.book["spent"] += 1
            if self.plan_remaining is not None:
                self.plan_remaining -= 1
            return True

    def refund(self) -> None:
        """Only for a POST that provably never reached Convo's generator (refused with 4xx)."""
        with self._lock:
            self.book["spent"] = max(0, self.book["spent"] - 1)


class InsightWork:
    """The queue of conversations owed keypoints/feedback checks, and the checks themselves."""

    def __init__(self, client: ApiClient, report: RunReport, *, now: datetime, state: dict,
                 recheck_days: float, credits: Credits) -> None:
        self.client, self.report, self.now = client, report, now
        self.due: dict[str, dict] = state.setdefault("insights_due", {})
        self.recheck = timedelta(days=max(0.0, recheck_days))
        self.credits = credits
        self.generated = 0
        self.stopped: str | None = None
        self.halted: RateLimitError | None = None

    def enqueue(self, cid: str, start: str | None, segment_count: int | None) -> None:
        """A transcript was (re)loaded: look for its keypoints and feedback now."""
        count = segment_count or 0
        kinds = ("k" if count > 0 else "") + ("f" if count >= FEEDBACK_MIN_SEGMENTS else "")
        if kinds:
            self.due[cid] = {"s": start, "k": kinds, "n": iso(self.now), "i": 0, "x": ""}
        else:
            self.due.pop(cid, None)

    def forget(self, cid: str) -> None:
        self.due.pop(cid, None)

    def run(self, stop_check) -> Iterator[Any]:
        """Checks every conversation whose check is due, newest first; yields table pages."""
        ready = [(cid, e) for cid, e in self.due.items() if parse_instant(e["n"]) <= self.now]
        ready.sort(key=lambda ce: ce[1].get("s") or "", reverse=True)

        def items() -> Iterator[tuple[str, dict]]:
            for pair in ready:
                if self.stopped or stop_check():
                    return
                yield pair

        found: dict[str, list] = {kind: [] for kind in INSIGHT_KINDS}
        for (cid, entry), result in map_ordered(self._check, items(), self.client.settings.concurrency):
            if isinstance(result, BaseException):
                self._failed(cid, result)
                continue
            for kind, row in result.rows.items():
                found[kind].append(row)
            self._settle(cid, entry, result)
            if sum(len(v) for v in found.values()) >= CHILD_BATCH:
                yield from self._flush(found)
        yield from self._flush(found)

    def _flush(self, found: dict[str, list]) -> Iterator[Any]:
        for kind, rows in found.items():
            if rows:
                yield dlt.mark.with_table_name(list(rows), kind)
                rows.clear()

    def _check(self, pair: tuple[str, dict]) -> Checked:
        """GET each missing kind (POST after a 404 when generation is on). A budget stop
        keeps what was already fetched and leaves the rest unchecked."""
        cid, entry = pair
        done = Checked(stop=self.halted)
        for kind in INSIGHT_KINDS:
            if LETTER[kind] not in entry["k"]:
                continue
            if done.stop is not None:
                done.unchecked += LETTER[kind]
                continue
            try:
                try:
                    body = self.client.get(f"conversations/{cid}/{kind}").body
                except NotFoundError:
                    body = self._generate(cid, kind, entry)
            except RateLimitError as exc:
                self.halted = self.halted or exc  # queued checks must not send any more
                done.stop, done.unchecked = exc, done.unchecked + LETTER[kind]
                continue
            data = body.get("data") if isinstance(body, dict) else None
            if isinstance(data, dict):
                shape = keypoints_row if kind == "keypoints" else feedback_row
                row = shape_or_none(self.report, kind, cid, shape, cid, data, self.report)
                if row is not None:
                    done.rows[kind] = row
            else:
                if body is not None:  # an answer, but not in the documented shape
                    self.report.warn(f"conversation {cid}: {kind} in an unknown shape, not loaded: "
                                     f"{str(body)[:200]}")
                done.missing += LETTER[kind]
        return done

    def _generate(self, cid: str, kind: str, entry: dict) -> dict | None:
        if LETTER[kind] in entry.get("x", "") or not self.credits.take():
            return None
        try:
            body = self.client.request("POST", f"conversations/{cid}/{kind}", json={"forceRefresh": False}).body
        except AiLimitExceeded as exc:
            self.credits.refund()
            self.credits.exhausted = exc.message
            self.report.warn(f"AI generation stopped: {exc.message}")
            return None
        except RateLimitError:  # the hour's budget: the POST was never sent or was refused
            self.credits.refund()
            raise
        except BadRequestError as exc:  # e.g. too short for feedback: never try this one again
            self.credits.refund()
            entry["x"] = entry.get("x", "") + LETTER[kind]
            self.report.warn(f"conversation {cid}: Convo refused to generate {kind}: {exc.message}")
            return None
        self.generated += 1
        return body

    def _settle(self, cid: str, entry: dict, done: Checked) -> None:
        if done.stop is not None:
            self.stopped = self.stopped or done.stop.message
        if done.unchecked:  # left for the next run, as due as it was
            entry["k"] = done.missing + done.unchecked
            return
        if not done.missing:
            self.due.pop(cid, None)
            return
        start = parse_instant(entry.get("s")) if entry.get("s") else None
        if start is None or self.now - start >= self.recheck:
            self.due.pop(cid, None)  # checked once; too old to wait for
            return
        hours = min(max(entry.get("i", 0) * 2, RECHECK_FIRST / timedelta(hours=1)),
                    RECHECK_MAX / timedelta(hours=1))
        entry.update(k=done.missing, i=hours, n=iso(self.now + timedelta(hours=hours)))

    def _failed(self, cid: str, exc: BaseException) -> None:
        if isinstance(exc, AuthError) or not isinstance(exc, MeetingEltError):
            raise exc
        self.report.warn(f"conversation {cid}: keypoints/feedback not checked, retried next run: {exc}")

    def report_left(self) -> None:
        if self.credits.budget:
            why = f"; {self.credits.exhausted}" if self.credits.exhausted else ""
            self.report.wait("ai credits", f"{self.credits.book['spent']} of {self.credits.budget} spent "
                             f"this month ({self.generated} this run){why}")
        if self.due:
            waiting = sum(1 for e in self.due.values() if parse_instant(e["n"]) <= self.now)
            self.report.wait("keypoints/feedback", f"{len(self.due)} conversations to check again "
                             f"({waiting} due now, the rest on a back-off of up to a day)")
