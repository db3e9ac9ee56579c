"""The partner's daily quota of unique conversations, counted by this source.

The API allows `daily_conversation_quota` (1,000) unique conversations a UTC day to be
touched by the per-conversation endpoints; a conversation already touched that day stays
readable. The source counts the conversations it touches on the API's clock and stops
before the limit, so a backfill by this source alone never meets the quota's 429. Another
client of the same token may still spend quota this count does not see: the first 429
that says the quota is spent (`spend_at_server`) then stops the rest of the day.

Resource state, under `quota`:
    day:   the API's UTC day the count is for ("2026-12-01"); a new day starts from zero
    used:  ids of the conversations touched that day (unique, so a re-read is free)
    spent: true once the API said the quota is spent that day
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

STATE_KEY = "quota"


class DailyQuota:
    """A thread-safe count of the conversations touched on the API's current UTC day."""

    def __init__(self, state: dict, now: datetime, limit: int | None) -> None:
        self.day = now.astimezone(UTC).date().isoformat()
        self.limit = int(limit) if limit else None  # None/0: no counting, only the API's 429 stops
        saved = state.get(STATE_KEY) or {}
        same_day = saved.get("day") == self.day
        self.used: set[str] = set(saved.get("used") or []) if same_day else set()
        self.spent = bool(saved.get("spent")) if same_day else False
        self._state = state
        self._lock = threading.Lock()

    def take(self, conversation_id: str) -> str | None:
        """Counts `conversation_id` as touched today. Returns None when it may be called, else
        why not (a conversation already touched today costs nothing and is always allowed)."""
        with self._lock:
            if conversation_id in self.used:
                return None
            if self.spent:
                return ("the API answered earlier today (UTC) that the daily conversation quota is "
                        "spent; the next run after 00:00 UTC continues")
            if self.limit is not None and len(self.used) >= self.limit:
                return (f"the daily conversation quota is used up ({self.limit} unique conversations a "
                        "UTC day, counted by this source on the API's clock); the next run after "
                        "00:00 UTC continues")
            self.used.add(conversation_id)
            return None

    def touched(self, conversation_id: str) -> bool:
        with self._lock:
            return conversation_id in self.used

    def release(self, conversation_id: str) -> None:
        """The call was refused (a 429, or never sent): the API did not count it."""
        with self._lock:
            self.used.discard(conversation_id)

    def spend_at_server(self) -> None:
        """The API answered that the quota is spent: no new conversation until the next day."""
        with self._lock:
            self.spent = True

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.used)

    def save(self) -> None:
        """Writes the count into resource state (committed with the extracted data)."""
        with self._lock:
            self._state[STATE_KEY] = {"day": self.day, "used": sorted(self.used), "spent": self.spent}
