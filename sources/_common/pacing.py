"""Proactive pacing, so that documented rate limits are never hit.

No library is used here on purpose: pyrate-limiter and friends pace to a fixed rate, but
the vendors also tell, per response, how many requests are left (`X-RateLimit-*`), and the
pacer has to obey those too. The logic is a thread-safe "next free slot" scheduler
(GCRA), about 40 lines.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class RateLimitInfo:
    """What the last response's `X-RateLimit-*` headers said."""

    limit: int | None
    remaining: int | None
    reset_at: float | None  # unix seconds

    @classmethod
    def from_headers(cls, headers) -> RateLimitInfo | None:
        def _int(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(float(value)) if value is not None else None
            except ValueError:
                return None

        remaining = _int("X-RateLimit-Remaining")
        if remaining is None:
            return None
        reset = _int("X-RateLimit-Reset")
        return cls(limit=_int("X-RateLimit-Limit"), remaining=remaining,
                   reset_at=float(reset) if reset is not None else None)


class Pacer:
    """Spaces requests to at most `requests_per_minute`, across threads.

    `requests_per_minute` of 0 or None turns pacing off. `burst` lets that many requests go
    back to back before spacing starts (the APIs count per window, not per gap).
    """

    def __init__(self, requests_per_minute: float | None, *, burst: int = 1,
                 clock=time.monotonic, sleep=time.sleep) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = 0.0  # theoretical arrival time of the next request (GCRA)
        self._hold_until = 0.0  # set when the server says the window is spent
        self.waited_seconds = 0.0

    def acquire(self) -> None:
        """Blocks until the caller may send one request."""
        with self._lock:
            now = self._clock()
            earliest = max(now, self._hold_until)
            if self.interval:
                # GCRA: a request may leave up to burst-1 intervals ahead of its theoretical
                # arrival time (burst=1: exactly at it)
                tat = max(self._next_free, now)
                start = max(earliest, tat - self.interval * (self.burst - 1))
                self._next_free = max(tat, start) + self.interval
            else:
                start = earliest
        delay = start - now
        if delay > 0:
            self.waited_seconds += delay
            self._sleep(delay)

    def hold(self, seconds: float) -> None:
        """No request leaves for `seconds` (after a 429 or an empty `X-RateLimit-Remaining`)."""
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + max(0.0, seconds))

    def observe(self, info: RateLimitInfo | None, *, reserve: int = 0) -> None:
        """Holds until the window resets when the server says `reserve` or fewer remain."""
        if info is None or info.remaining is None or info.reset_at is None:
            return
        if info.remaining <= reserve:
            self.hold(min(max(0.0, info.reset_at - time.time()), 3600.0))
