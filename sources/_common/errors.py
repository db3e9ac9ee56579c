"""Typed errors. Each says what the caller should do: abort, retry, skip, or stop cleanly."""

from __future__ import annotations


class MeetingEltError(Exception):
    """Base class. `hint` tells the user how to fix or what happens next."""

    hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.url = url
        if hint is not None:
            self.hint = hint
        self.message = message
        super().__init__(self._compose())

    def _compose(self) -> str:
        parts = [self.message]
        if self.status is not None or self.url:
            parts.append(f"(HTTP {self.status} on {self.url})" if self.url else f"(HTTP {self.status})")
        if self.hint:
            parts.append(f"— {self.hint}")
        return " ".join(parts)


class ConfigError(MeetingEltError):
    """A configuration value is missing or wrong. Abort; the message names the key."""


class AuthError(MeetingEltError):
    """401: the credential is wrong, revoked or expired. Abort the run."""

    hint = "check the token/key in .dlt/secrets.toml or its environment variable"


class ScopeError(MeetingEltError):
    """403 for a missing scope or plan feature. Skip the tables that need it."""

    def __init__(self, message: str, *, scope: str | None = None, **kw) -> None:
        self.scope = scope
        kw.setdefault(
            "hint",
            f"grant the '{scope}' scope to the token to load these tables"
            if scope
            else "the credential is not allowed to read this endpoint",
        )
        super().__init__(message, **kw)


class NotFoundError(MeetingEltError):
    """404: the record is gone or not ready yet. The caller decides (often: skip)."""


class RateLimitError(MeetingEltError):
    """429 that retries could not outwait within the cap. Stop cleanly; continue next run."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class QuotaExhausted(RateLimitError):
    """A daily/hourly quota is spent. Stop per-item work, load what was fetched, exit 0."""

    hint = "what was fetched is loaded; the next run continues where this one stopped"


class BudgetExhausted(QuotaExhausted):
    """The run's own request budget (`max_requests`) is spent. Stop cleanly like a quota."""


class TransientError(MeetingEltError):
    """5xx, timeouts, dropped connections or unparsable bodies that outlasted the retries."""

    hint = "the API kept failing; re-run later — nothing fetched so far is lost"


class UnreachableError(MeetingEltError):
    """The host never answered this run (refused, unknown name, or silent). Abort at once."""

    hint = "check base_url and that this machine can reach the host (network, proxy, firewall)"


class BadRequestError(MeetingEltError):
    """400: the request was malformed (usually a config value such as start_date)."""


class PaginationLoop(MeetingEltError):
    """The API handed back a cursor/URL it already gave: stop instead of looping forever."""
