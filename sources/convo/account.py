"""The run's plan: who the key belongs to, the server's clock, and the request budget.

`GET /user/profile` is the first request of every run. Its `subscription.tier` names the
plan (the profile reports no request allowance), and the `X-RateLimit-*` headers of the
answer say how many requests are left in the rolling hour. The client then refuses to send
(`QuotaExhausted`) once the remaining count is down to the reserve, so the source stops
before it could provoke a 429, loads what it fetched, and the next run continues. Answers
without such headers (reported on Enterprise) are paced by the tier instead: the source
counts its own requests of the last hour (in source state) against the tier's hourly limit
(Starter 100, Professional 500, Enterprise 2,000; a tier it does not know, as Starter).
"""

from __future__ import annotations

import email.utils
from datetime import datetime, timedelta
from typing import Any

from dlt.common import logger

from .._common.errors import RateLimitError
from .._common.http import ApiClient
from .._common.report import RunReport
from .._common.timeutil import iso, parse_instant, utc_now
from .helpers import ai_generations, tier_of
from .settings import HOURLY_LIMIT, RATE_WINDOW, UNKNOWN_TIER_LIMIT, WEBHOOK_TIERS

RECENT_KEY = "recent_requests"  # source state: {run started at: requests sent}, last hour only


class Account:
    """Loads the profile once per run (lazily, by whichever resource runs first)."""

    def __init__(self, client: ApiClient, report: RunReport, *, reserve: int) -> None:
        self.client, self.report, self.reserve = client, report, reserve
        self.profile: dict | None = None
        self.now: datetime = utc_now()
        self.tier: str | None = None
        self.stopped: str | None = None  # why no request can be sent this run
        self._loaded = False
        self._run_key: str | None = None
        self._source_state: dict | None = None
        # one request held back for each cheap listing (calendar, webhooks) that has not run
        # yet, so the per-conversation work, whatever order dlt runs resources in, cannot
        # starve them during a long backfill
        self._released: set[str] = set()

    def ready(self, source_state: dict) -> bool:
        """True when requests may be sent this run; loads the profile on the first call."""
        if not self._loaded:
            self._loaded = True
            self._source_state = source_state
            self._load(source_state)
        return self.stopped is None

    def _load(self, source_state: dict) -> None:
        try:
            answer = self.client.get("user/profile")
        except RateLimitError as exc:  # someone else spent the hour: nothing to do this run
            self.stop(exc)
            return
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
            self._count_own_requests(source_state)
        left = self.client.remaining_estimate()
        logger.info(f"{self.report.source}: tier {self.tier}, "
                    f"{'unknown' if left is None else left} requests left this hour (reserve {self.reserve})")

    def release(self, resource: str) -> None:
        """`resource` is about to run: the request held back for it may now be spent."""
        self._released.add(resource)
        self._apply_hold()

    def _apply_hold(self) -> None:
        held = {"calendar_events": 1, "webhooks": 1 if self.webhooks_allowed else 0}
        self.client.min_remaining = self.reserve + sum(
            n for name, n in held.items() if name not in self._released)

    @property
    def hourly_limit(self) -> int:
        """Requests per rolling hour of the key's plan."""
        return HOURLY_LIMIT.get(self.tier or "", UNKNOWN_TIER_LIMIT)

    @property
    def webhooks_allowed(self) -> bool:
        """Professional and above; a plan the source does not know is given the benefit of
        the doubt (a 403 then skips the table)."""
        return self.tier in WEBHOOK_TIERS or self.tier not in HOURLY_LIMIT

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

    def stop(self, exc: Exception) -> str:
        """Records (once) that the request budget is spent; returns the note."""
        if self.stopped is None:
            self.stopped = getattr(exc, "message", None) or str(exc)
        return self.stopped

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

    @property
    def ai_generations(self) -> dict[str, Any]:
        """`apiUsage.aiGenerations` of the profile: `used`, `limit`, `remaining`, `resetsAt`
        (`limit` and `remaining` null on Enterprise: unlimited)."""
        return ai_generations(self.profile)


def _server_now(date_header: str | None) -> datetime | None:
    if not date_header:
        return None
    try:
        return email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None


def _from_unix(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=utc_now().tzinfo) + timedelta(seconds=seconds)
