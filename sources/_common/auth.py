"""Auth as httpx.Auth objects; every secret is registered for redaction on creation."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

import httpx

from .errors import AuthError
from .redaction import redact, register_secret


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer <token>`, plus any fixed extra headers (e.g. an account id)."""

    def __init__(self, token: str, extra_headers: dict[str, str] | None = None) -> None:
        register_secret(token)
        self._token = token
        self._extra = dict(extra_headers or {})

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}(token=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        for name, value in self._extra.items():
            request.headers[name] = value
        yield request


class _TokenRetry(Exception):
    """Internal: the token endpoint failed in a way worth another try."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OAuth2ClientCredentials(httpx.Auth):
    """OAuth 2 client-credentials grant with token reuse.

    The token is fetched lazily, reused until `refresh_margin_seconds` before it expires,
    and fetched once more when the API answers 401 (a token revoked or expired early).
    """

    requires_response_body = False

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        refresh_margin_seconds: float = 60.0,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_max_seconds: float = 5.0,
    ) -> None:
        register_secret(client_id)
        register_secret(client_secret)
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._margin = refresh_margin_seconds
        self._configured_margin = refresh_margin_seconds
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff_max = backoff_max_seconds
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id=***, client_secret=***)"

    def _fetch_token(self) -> None:
        # the token endpoint fails like any other (5xx, 429, drops, cut bodies): retry those
        for attempt in range(self._max_retries + 1):
            try:
                self._fetch_token_once()
                return
            except _TokenRetry as exc:
                if attempt >= self._max_retries:
                    raise AuthError(redact(f"the token endpoint kept failing: {exc}")) from None
                wait = min(self._backoff_max, 0.1 * 2 ** attempt)
                time.sleep(min(self._backoff_max, exc.retry_after) if exc.retry_after is not None else wait)

    def _fetch_token_once(self) -> None:
        try:
            response = httpx.post(
                self._token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
                timeout=self._timeout,
            )
        except httpx.TransportError as exc:
            raise _TokenRetry(f"could not reach the token endpoint: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise AuthError(redact(f"could not reach the token endpoint: {type(exc).__name__}")) from None
        if response.status_code == 429 or response.status_code >= 500:
            try:
                retry_after = float(response.headers.get("Retry-After", ""))
            except ValueError:
                retry_after = None
            raise _TokenRetry(f"the token endpoint answered {response.status_code}", retry_after)
        if response.status_code in (400, 401, 403):
            raise AuthError(
                f"the token endpoint refused the client credentials ({response.status_code})",
                hint="check client_id and client_secret in .dlt/secrets.toml or their env vars",
            )
        if response.status_code >= 300:
            raise AuthError(f"the token endpoint answered {response.status_code}")
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise _TokenRetry("the token endpoint sent an unreadable answer") from None
        register_secret(token)
        self._token = token
        lifetime = float(body.get("expires_in") or 3600)
        self._expires_at = time.monotonic() + lifetime
        # short-lived tokens (under 2 margins) are renewed at half their life, not on every call
        self._margin = min(self._configured_margin, lifetime / 2)
        self.tokens_fetched += 1

    def token(self, *, force: bool = False, stale: str | None = None) -> str:
        """Returns a valid token, fetching one when none is held, it nears expiry, or `force`."""
        with self._lock:
            # another thread may already have replaced the stale token
            if force and self._token is not None and self._token != stale:
                return self._token
            if force or self._token is None or time.monotonic() >= self._expires_at - self._margin:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.token(force=True, stale=token)}"
            yield request
