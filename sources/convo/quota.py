"""The run's plan and budgets: who the key belongs to, the server's clock, the rolling hour's
requests, and the month's AI credits.

`GET /user/profile` is the first request of every run. Its `subscription.tier` names the
plan (the profile reports no request allowance), and the `X-RateLimit-*` headers of the
answer say how many requests are left in the rolling hour. The client then refuses to send
(`QuotaExhausted`) once the remaining count is down to the reserve, so the source stops
before it could provoke a 429, loads what it fetched, and the next run continues. Answers
without such headers (reported on Enterprise) are paced by the tier instead: the source
counts its own requests of the last hour (source state `recent_requests`) against the
tier's hourly limit (Starter 100, Professional 500, Enterprise 2,000; a tier it does not
know, as Starter).

The engine stops a listing or the per-item calls at the first refusal (its `STOP` action);
the hooks here (`before`, `settle`) keep the run's budget note, and hold one request back
for the calendar and the webhooks until they run.

AI credits (`Credits`, source state `ai_generation`: the month and what this source spent
in it) cap the keypoints/feedback this source generates with POST.
"""

from __future__ import annotations

import email.utils
import threading
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.common import logger

from .._common.errors import QuotaExhausted
from .._common.http import ApiClient
from .._common.records import read_int
from .._common.report import RunReport
from .._common.timeutil import iso, parse_instant, utc_now
from .helpers import ai_generations, tier_of
from .settings import (
    CREDITS_KEY,
    HELD_BACK,
    HOURLY_LIMIT,
    RATE_WINDOW,
    RECENT_KEY,
    UNKNOWN_TIER_LIMIT,
    WEBHOOK_TIERS,
)

NOT_ANSWERED = "the run's first request (the profile) was not answered"


class Account:
    """The profile, read once per run by whichever resource needs it first, and the hour's budget."""

    def __init__(self, client: ApiClient, report: RunReport, *, reserve: int) -> None:
        self.client, self.report, self.reserve = client, report, reserve
        self.profile: dict | None = None
        self.now: datetime = utc_now()
        self.tier: str | None = None
        self.stopped: str | None = None  # why this run stopped early
        self._asked = False
        self._run_key: str | None = None
        self._source_state: dict | None = None
        self._released: set[str] = set()

    # ---------------------------------------------------------------- the profile
    @property
    def refused(self) -> bool:
        """The profile was asked for and not answered: no request is sent this run."""
        return self._asked and self.profile is None

    def ready(self) -> None:
        """Reads the profile on the first call. A refusal (the hour spent by another client)
        raises to the caller's engine, which stops cleanly; later calls raise it again
        without a request."""
        if self.profile is not None:
            return
        if self._asked:
            raise QuotaExhausted(self.stopped or NOT_ANSWERED)
        self._asked = True
        self._source_state = dlt.current.source_state()
        answer = None
        try:
            answer = self.client.get("user/profile")
        finally:
            if answer is None:
                self.stop(NOT_ANSWERED)
                self.report_budget()
        body = answer.body if isinstance(answer.body, dict) else {}
        self.profile = body.get("data") if isinstance(body.get("data"), dict) else {}
        self.now = _server_now(answer.headers.get("Date")) or utc_now()
        self.tier = tier_of(self.profile)
        if self.tier not in HOURLY_LIMIT:
            self.report.warn(f"the profile names no plan this source knows (subscription.tier = "
                             f"{self.tier!r}): paced as Starter ({UNKNOWN_TIER_LIMIT} requests an hour), "
                             "webhooks tried")
        self._run_key = iso(self.now)
        self._apply_hold()
        if self.client.rate_limit is None:
            self._count_own_requests(self._source_state)
        left = self.client.remaining_estimate()
        logger.info(f"{self.report.source}: tier {self.tier}, "
                    f"{'unknown' if left is None else left} requests left this hour (reserve {self.reserve})")

    @property
    def ai_generations(self) -> dict[str, Any]:
        """`apiUsage.aiGenerations` of the profile: `used`, `limit`, `remaining`, `resetsAt`
        (`limit` and `remaining` null on Enterprise: unlimited)."""
        return ai_generations(self.profile)

    @property
    def hourly_limit(self) -> int:
        """Requests per rolling hour of the key's plan."""
        return HOURLY_LIMIT.get(self.tier or "", UNKNOWN_TIER_LIMIT)

    @property
    def webhooks_allowed(self) -> bool:
        """Professional and above; a plan the source does not know is given the benefit of
        the doubt (a 403 then skips the table)."""
        return self.tier in WEBHOOK_TIERS or self.tier not in HOURLY_LIMIT

    # ---------------------------------------------------------------- the engines' hooks
    def before(self, resource: str) -> Callable[[], bool]:
        """An engine's `before`: the request held back for `resource` may now be spent;
        nothing is read once the profile was refused."""
        def run() -> bool:
            if resource in HELD_BACK:
                self.release(resource)
            if self.refused:
                self.report.wait(resource, "not read: the request budget is spent")
                return False
            return True

        return run

    def settle(self, stopped: str | None) -> None:
        """An engine's `after`: its stop (if any) is the run's, and the budget note is brought
        up to date (the last engine to finish writes the final one)."""
        if stopped:
            self.stop(stopped)
        self.report_budget()

    def release(self, resource: str) -> None:
        """`resource` is about to run: the request held back for it may now be spent."""
        self._released.add(resource)
        self._apply_hold()

    def _apply_hold(self) -> None:
        held = [name for name in HELD_BACK if name not in self._released
                and (name != "webhooks" or self.webhooks_allowed)]
        self.client.min_remaining = self.reserve + len(held)

    # ---------------------------------------------------------------- counting
    def _count_own_requests(self, source_state: dict) -> None:
        """No X-RateLimit-* headers: cap this run at what the tier's hour still allows."""
        recent: dict[str, int] = source_state.setdefault(RECENT_KEY, {})
        cutoff = self.now - RATE_WINDOW
        for key in [k for k in recent if parse_instant(k) <= cutoff]:
            del recent[key]
        spent = sum(recent.values())
        # this run's requests so far (the profile) count against the same hour
        cap = max(self.client.requests_sent, self.hourly_limit - self.reserve - spent)
        settings = self.client.settings
        settings.max_requests = min(settings.max_requests, cap) if settings.max_requests else cap
        self.record_spend()

    def record_spend(self) -> None:
        """Remembers this run's requests (headerless tiers only), for the next run's budget."""
        if self._source_state is not None and self._run_key and self.client.rate_limit is None:
            self._source_state.setdefault(RECENT_KEY, {})[self._run_key] = self.client.requests_sent

    def stop(self, reason: str) -> None:
        """Records (once) why the run stopped early."""
        if self.stopped is None:
            self.stopped = reason

    def budget_note(self) -> str:
        """What is left of the hour, for the report."""
        info = self.client.rate_limit
        left = self.client.remaining_estimate()
        if info is None:
            cap = self.client.settings.max_requests
            return (f"{self.client.requests_sent} requests sent"
                    + (f" of this run's cap of {cap}" if cap else ""))
        reset = f", window frees up from {iso(_from_unix(info.reset_at))}" if info.reset_at else ""
        return f"{left} of {info.limit} requests left in the rolling hour (reserve {self.reserve}){reset}"

    def report_budget(self) -> None:
        self.record_spend()
        if self.stopped:
            self.report.wait("request budget", f"stopped early: {self.stopped}; {self.budget_note()}")
        else:
            self.report.wait("request budget", self.budget_note())


class Credits:
    """This month's AI generation budget. Thread-safe; counts conservatively: one credit per
    POST sent, even when Convo answers that the result was cached (a retried POST may have
    spent the credit on its first attempt). A credit is given back only for a POST that
    provably made nothing: refused before it was sent or with a 429, or answered 400/404."""

    def __init__(self, source_state: dict, budget: int, now: datetime, plan_remaining: Any) -> None:
        month = now.strftime("%Y-%m")
        book = source_state.setdefault(CREDITS_KEY, {})
        if book.get("month") != month:
            book.clear()
            book.update(month=month, spent=0)
        self.book, self.budget = book, max(0, int(budget or 0))
        self.plan_remaining = read_int(plan_remaining)  # None: unlimited (Enterprise) or unknown
        self.exhausted: str | None = None
        self._held: set[Hashable] = set()  # credits taken for POSTs not answered yet
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> bool:
        """A credit for the POST `key` is about to send; False when none may be spent."""
        with self._lock:
            if self.exhausted or self.book["spent"] >= self.budget:
                return False
            if self.plan_remaining is not None and self.plan_remaining <= 0:
                self.exhausted = "the plan's monthly AI generations are spent"
                return False
            self.book["spent"] += 1
            if self.plan_remaining is not None:
                self.plan_remaining -= 1
            self._held.add(key)
            return True

    def keep(self, key: Hashable) -> None:
        """The POST was answered with a result: its credit is spent."""
        with self._lock:
            self._held.discard(key)

    def give_back(self, key: Hashable) -> None:
        """The POST made nothing (refused, or answered 400/404): its credit, if one is held."""
        with self._lock:
            if key in self._held:
                self._held.discard(key)
                self.book["spent"] = max(0, self.book["spent"] - 1)
                if self.plan_remaining is not None:
                    self.plan_remaining += 1

    def stop(self, why: str) -> None:
        with self._lock:
            self.exhausted = self.exhausted or why

    @property
    def spent(self) -> int:
        return int(self.book["spent"])


def _server_now(date_header: str | None) -> datetime | None:
    """The `Date` header as an instant (the API's clock); None when absent or unreadable."""
    parsed = email.utils.parsedate_tz(date_header) if date_header else None
    return datetime.fromtimestamp(email.utils.mktime_tz(parsed), UTC) if parsed else None


def _from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
