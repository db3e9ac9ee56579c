"""The one HTTP layer every source uses: retries, pacing, budgets, typed errors, paging.

Retries cover 429, 5xx, timeouts, dropped connections and truncated or
unparsable bodies, with capped exponential backoff and full jitter; `Retry-After` (header
or body) is trusted up to `retry_after_max_seconds`, past which the run stops cleanly
(`RateLimitError`) rather than sleeping for an hour. Every message is redacted.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from .errors import (
    AuthError,
    BadRequestError,
    MeetingEltError,
    NotFoundError,
    QuotaExhausted,
    RateLimitError,
    ScopeError,
    TransientError,
    UnreachableError,
)
from .pacing import Pacer, RateLimitInfo
from .paginators import BasePaginator, PageRequest, dig
from .redaction import redact, redact_url
from .report import RunReport
from .sending import Sender

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_RETRIES = 8
DEFAULT_BACKOFF_INITIAL_SECONDS = 0.5
DEFAULT_BACKOFF_MAX_SECONDS = 30.0
DEFAULT_RETRY_AFTER_MAX_SECONDS = 120.0
DEFAULT_CONCURRENCY = 4
# a host that never answered this run (refused, unknown, or silent) is given this many
# attempts, each connect capped at this many seconds, before the run says it cannot reach it:
# a wrong base_url or a network outage fails in seconds, not after the full retry schedule
UNREACHABLE_ATTEMPTS = 3
UNREACHABLE_CONNECT_TIMEOUT_SECONDS = 5.0
RETRY_AFTER_BODY_KEYS = ("retryAfter", "retry_after", "error.retry_after", "error.retryAfter",
                         "error.recovery.retry_after_seconds")


_SSL_CONTEXT: Any = None
_SSL_LOCK = threading.Lock()


def shared_ssl_context() -> Any:
    """One TLS context per process, as httpx builds it by default (certifi's CAs, and
    `SSL_CERT_FILE`/`SSL_CERT_DIR` when set): building one loads the CA bundle, about 40 ms,
    and a run builds a client per source and per checkpoint round."""
    global _SSL_CONTEXT
    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            _SSL_CONTEXT = httpx.create_ssl_context()
        return _SSL_CONTEXT


@dataclass
class HttpSettings:
    """Client tuning shared by every source (each is also a source config key)."""

    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS
    backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS
    retry_after_max_seconds: float = DEFAULT_RETRY_AFTER_MAX_SECONDS
    requests_per_minute: float | None = None  # None/0: no proactive pacing
    concurrency: int = DEFAULT_CONCURRENCY
    max_requests: int | None = None  # request budget for one run; None/0: unlimited


class _Retryable(Exception):
    """Internal: an attempt failed in a way worth another try."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 final: MeetingEltError | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.final = final
        self.unreachable = unreachable


class ApiResponse:
    """A parsed answer: status, JSON body (or None), headers, and the request's redacted URL
    (redacted when first read: most answers' URLs never are, and it costs ~14 µs)."""

    __slots__ = ("status", "body", "headers", "_url", "_safe_url")

    def __init__(self, status: int, body: Any, headers: httpx.Headers, url: str) -> None:
        self.status, self.body, self.headers = status, body, headers
        self._url, self._safe_url = url, None

    @property
    def url(self) -> str:
        if self._safe_url is None:
            self._safe_url = redact_url(self._url)
        return self._safe_url

    def __repr__(self) -> str:
        return f"ApiResponse(status={self.status}, url={self.url!r})"


@dataclass
class Page:
    """One page of a list: its items plus the request and response that produced it."""

    items: list
    response: ApiResponse
    request: PageRequest
    number: int


ErrorClassifier = Callable[[ApiResponse], "MeetingEltError | None"]


def _reason(exc: Exception) -> str:
    """Why a connection failed, in words (refused, unknown host, no answer)."""
    text = str(exc).lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return "no answer within the connect timeout"
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "the host name does not resolve"
    if "refused" in text:
        return "the connection was refused"
    return type(exc).__name__


def parse_retry_after(value: Any) -> float | None:
    """Seconds to wait from a Retry-After value: seconds, or an HTTP date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_message(body: Any) -> str:
    """The human message of an error body, in any of the five vendors' shapes.

    Also Django REST framework's `detail` as a list (of strings or `{"loc", "msg"}`) and its
    400 map of field -> messages, and OAuth's `error_description`.
    """
    if isinstance(body, dict):
        for path in ("error.message", "message", "detail", "error_description", "error"):
            found = dig(body, path)
            if isinstance(found, str) and found:
                return found
        listed = _listed_messages(body.get("detail"))
        if listed:
            return listed
        fields = [f"{name}: {messages}" for name, value in body.items()
                  if isinstance(name, str) and (messages := _listed_messages(value))]
        if fields and len(fields) == len(body):
            return "; ".join(fields)[:300]
        return orjson.dumps(body)[:300].decode(errors="replace")
    if isinstance(body, str):
        return body[:300]
    return ""


def _listed_messages(value: Any) -> str | None:
    """The messages of a list of strings or of `{"msg": ...}` entries, joined; else None."""
    if not isinstance(value, list) or not value:
        return None
    found = [v if isinstance(v, str) else v.get("msg") if isinstance(v, dict) else None for v in value]
    texts = [t for t in found if isinstance(t, str) and t]
    return "; ".join(texts)[:300] if len(texts) == len(value) else None


@dataclass
class ApiClient:
    """A client per source: base URL, auth object, settings, pacer, budget and report."""

    base_url: str
    auth: httpx.Auth | None
    report: RunReport
    settings: HttpSettings = field(default_factory=HttpSettings)
    classify_error: ErrorClassifier | None = None
    headers: dict[str, str] = field(default_factory=dict)
    rate_limit_reserve: int = 0
    transport: httpx.BaseTransport | None = None
    # stop (QuotaExhausted) instead of sending when the server's last X-RateLimit-Remaining,
    # less the requests sent since, is down to this many: for hour-long windows (Convo)
    # where waiting for the reset inside a run is pointless. None: off.
    min_remaining: int | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        s = self.settings
        self.pacer = Pacer(s.requests_per_minute, burst=1)
        self.rate_limit: RateLimitInfo | None = None
        # for remaining_estimate(): the lowest X-RateLimit-Remaining of the current window, and
        # attempts sent / answered with such headers (a drop stays "unanswered": conservative)
        self._floor: RateLimitInfo | None = None
        self._sent = 0
        self._answered = 0
        self._stopped_at: int | None = None  # the reserve at which sending stopped
        self._reached = False  # the host answered at least once this run
        self._first_contact_timeout = httpx.Timeout(
            s.timeout_seconds, connect=min(s.timeout_seconds, UNREACHABLE_CONNECT_TIMEOUT_SECONDS))
        self._seq_lock = threading.Lock()
        pool = max(4, s.concurrency * 2)
        self._http = httpx.Client(
            auth=self.auth,
            verify=shared_ssl_context(),
            headers={"Accept": "application/json", "User-Agent": "meeting-elt", **self.headers},
            timeout=httpx.Timeout(s.timeout_seconds),
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            follow_redirects=True,
            transport=self.transport,
        )
        self._sender = Sender(self._http, self.auth)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def remaining_estimate(self) -> int | None:
        """Requests surely left in the server's window (None when the API sends no
        `X-RateLimit-Remaining`): the lowest remaining count answered in this window, less
        the requests still unanswered. Concurrent answers can arrive out of order, so the
        last one is not trusted to be the lowest; a count goes up only with a later reset."""
        with self._seq_lock:
            return self._estimate()

    def _estimate(self) -> int | None:
        if self._floor is None or self._floor.remaining is None:
            return None
        return self._floor.remaining - (self._sent - self._answered)

    @property
    def requests_sent(self) -> int:
        """Attempts sent by this client so far (answered or not)."""
        return self._sent

    def _take_slot(self) -> None:
        """Counts an attempt out; raises QuotaExhausted at the `min_remaining` reserve, and
        BudgetExhausted at `max_requests`, counted at sending across every client of the
        source (they share its report: an OAuth token request counts too)."""
        with self._seq_lock:
            left = self._estimate()
            reserve = self.min_remaining
            # once stopped at a reserve, stay stopped (a late answer raising the estimate must
            # not let a later request jump the queue), unless the reserve is lowered
            if reserve is not None and left is not None and (
                    left <= reserve or (self._stopped_at is not None and reserve >= self._stopped_at)):
                self._stopped_at = reserve if self._stopped_at is None else min(self._stopped_at, reserve)
                raise QuotaExhausted(
                    f"the API's request allowance is down to the reserve ({left} left, "
                    f"{self.min_remaining} kept in reserve)")
            self.report.take_request(self.settings.max_requests)
            self._sent += 1

    def _observe_rate_limit(self, info: RateLimitInfo) -> None:
        with self._seq_lock:
            self.rate_limit = info
            self._answered += 1
            floor = self._floor
            if floor is None or floor.remaining is None or (info.remaining or 0) <= floor.remaining \
                    or (info.reset_at or 0) > (floor.reset_at or 0):
                self._floor = info

    # ------------------------------------------------------------------ requests
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def get(self, path: str, params: dict | None = None, **kw: Any) -> ApiResponse:
        return self.request("GET", path, params=params, **kw)

    def request(self, method: str, path: str, *, params: dict | None = None,
                json: Any = None, data: Any = None,
                accept: Callable[[ApiResponse], bool] | None = None) -> ApiResponse:
        """Sends one request with retries; returns the parsed answer or raises a typed error.

        `accept`: answers the caller reads itself (e.g. a 404 that means "not made yet"):
        one it accepts is returned as it is, never raised or retried; any other error
        answer keeps its retries and its typed error.
        """
        url = self.url(path)
        params = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 1
        while True:
            try:
                return self._attempt(method, url, params, json, data, accept, retry=attempt > 1)
            except _Retryable as exc:
                if self._out_of_attempts(exc, attempt):
                    if exc.final is not None:
                        raise exc.final from None
                    raise TransientError(
                        f"{method} failed after {attempt} attempts: {exc}", url=redact_url(url)
                    ) from None
                time.sleep(self._delay(exc, attempt))
                attempt += 1

    def _out_of_attempts(self, exc: _Retryable, attempt: int) -> bool:
        """The retry schedule's end: `max_retries`, or sooner for a host never reached."""
        if attempt >= max(1, self.settings.max_retries + 1):
            return True
        return exc.unreachable and attempt >= UNREACHABLE_ATTEMPTS

    def _delay(self, exc: _Retryable, attempt: int) -> float:
        """Seconds before the next attempt: capped exponential backoff with full jitter, or
        the server's `Retry-After` (capped) with a little jitter so threads do not stampede."""
        s = self.settings
        backoff = random.uniform(0, min(s.backoff_max_seconds, s.backoff_initial_seconds * 2 ** (attempt - 1)))
        if exc.retry_after is not None:
            return min(exc.retry_after, s.retry_after_max_seconds) + backoff * 0.1
        return backoff

    def _attempt(self, method: str, url: str, params: dict, json: Any, data: Any,
                 accept: Callable[[ApiResponse], bool] | None, *, retry: bool) -> ApiResponse:
        self._take_slot()
        self.pacer.acquire()
        try:
            response = self._sender.send(method, url, params=params or None, json=json, data=data,
                                         timeout=None if self._reached else self._first_contact_timeout)
            content = response.content  # read whole by the sender: a truncated body raised
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self.report.count_request("unreachable", retry=retry)
            safe_url = redact_url(url)
            if self._reached:
                raise _Retryable(f"connection failed ({type(exc).__name__}) on {safe_url}") from None
            host = httpx.URL(url).host
            raise _Retryable(
                f"cannot reach {host} ({type(exc).__name__})", unreachable=True,
                final=UnreachableError(f"cannot reach {host}: {_reason(exc)}", url=safe_url)) from None
        except httpx.TimeoutException as exc:
            self.report.count_request("timeout", retry=retry)
            raise _Retryable(f"timeout ({type(exc).__name__}) on {redact_url(url)}") from None
        except httpx.TransportError as exc:
            self.report.count_request("dropped", retry=retry)
            raise _Retryable(f"connection failed ({type(exc).__name__}) on {redact_url(url)}") from None
        self._reached = True
        status = response.status_code
        self.report.count_request(status, retry=retry)
        info = RateLimitInfo.from_headers(response.headers)
        if info is not None:
            self._observe_rate_limit(info)
            self.pacer.observe(info, reserve=self.rate_limit_reserve)
        try:
            body = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            if 200 <= status < 300 and response.headers.get("content-type", "").startswith("application/json"):
                raise _Retryable(f"unparsable JSON body ({len(content)} bytes) from {redact_url(url)}") from None
            body = content.decode(errors="replace")
        answer = ApiResponse(status, body, response.headers, url)
        if 200 <= status < 300 or (accept is not None and accept(answer)):
            return answer
        raise self._error_for(answer) from None

    def _error_for(self, answer: ApiResponse) -> Exception:
        """Turns a non-2xx answer into a typed error, or a `_Retryable` for 429/5xx."""
        status, url = answer.status, answer.url
        message = redact(error_message(answer.body)) or f"HTTP {status}"
        vendor = self.classify_error(answer) if self.classify_error else None
        if vendor is not None and not isinstance(vendor, RateLimitError | TransientError):
            return vendor
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            if retry_after is None:
                for key in RETRY_AFTER_BODY_KEYS:
                    retry_after = parse_retry_after(dig(answer.body, key))
                    if retry_after is not None:
                        break
            if isinstance(vendor, RateLimitError):
                vendor.retry_after = retry_after
                return vendor  # a quota: waiting inside this run would not help
            if retry_after is not None:
                self.pacer.hold(min(retry_after, self.settings.retry_after_max_seconds))
            if status == 429 and retry_after is not None and retry_after > self.settings.retry_after_max_seconds:
                return RateLimitError(
                    f"rate limited for {retry_after:.0f}s, longer than retry_after_max_seconds",
                    status=status, url=url, retry_after=retry_after,
                    hint="what was fetched is loaded; the next run continues",
                )
            final = (RateLimitError(message, status=status, url=url, retry_after=retry_after)
                     if status == 429 else None)
            return _Retryable(f"HTTP {status} on {url}: {message}", retry_after=retry_after, final=final)
        if status == 401:
            return AuthError(f"authentication failed: {message}", status=status, url=url)
        if status == 403:
            return ScopeError(f"forbidden: {message}", status=status, url=url)
        if status == 404:
            return NotFoundError(f"not found: {message}", status=status, url=url)
        if status in (400, 422):
            return BadRequestError(f"bad request: {message}", status=status, url=url)
        return MeetingEltError(f"unexpected answer: {message}", status=status, url=url)

    # ------------------------------------------------------------------ paging
    def paginate(self, path: str, *, paginator: BasePaginator, items_path: str | None,
                 params: dict | None = None) -> Iterator[Page]:
        """Yields pages until the paginator says there is no next one."""
        request = PageRequest(path, dict(params or {}))
        paginator.init_request(request)
        number = 0
        while True:
            answer = self.get(request.url, params=request.params)
            items = dig(answer.body, items_path) if items_path else answer.body
            if items is None:
                items = []
            if not isinstance(items, list):
                raise MeetingEltError(f"expected a list at '{items_path}' in the answer", url=answer.url)
            paginator.update_state(answer, items)
            yield Page(items, answer, PageRequest(request.url, dict(request.params)), number)
            number += 1
            if not paginator.has_next_page:
                return
            paginator.update_request(request)
