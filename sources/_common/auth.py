"""Auth as httpx.Auth objects; every secret is registered for redaction on creation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx

from .errors import AuthError, BadRequestError, ScopeError
from .redaction import register_secret


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


class OAuth2ClientCredentials(httpx.Auth):
    """OAuth 2 client-credentials grant with token reuse.

    The token is fetched lazily, reused until `refresh_margin_seconds` before it expires
    (half its life for short-lived tokens), and fetched once more when the API answers 401
    (a token revoked or expired early). `post_form(url, form) -> body` sends the token
    request: pass an `ApiClient`'s, so the token endpoint gets the same retries, pacing and
    request counting as every other call.
    """

    requires_response_body = False

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        post_form: Callable[[str, dict], Any],
        refresh_margin_seconds: float = 60.0,
    ) -> None:
        register_secret(client_id)
        register_secret(client_secret)
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._post_form = post_form
        self._margin = refresh_margin_seconds
        self._configured_margin = refresh_margin_seconds
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id=***, client_secret=***)"

    def _fetch_token(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._client_secret}
        try:
            body = self._post_form(self._token_url, form)
        except (AuthError, ScopeError, BadRequestError) as exc:
            raise AuthError(
                f"the token endpoint refused the client credentials ({exc.status})",
                hint="check client_id and client_secret in .dlt/secrets.toml or their env vars",
            ) from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise AuthError("the token endpoint answered without an access_token")
        register_secret(token)
        self._token = token
        lifetime = float(body.get("expires_in") or 3600)
        self._expires_at = time.monotonic() + lifetime
        # short-lived tokens (under 2 margins) are renewed at half their life, not on every call
        self._margin = min(self._configured_margin, lifetime / 2)

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
