"""Several tokens of one account, used together: a rotating bearer auth with a pacer per token.

APIs that limit requests per token (not per account) let a user issue several tokens to
read the same data faster. `RotatingBearerAuth` is an `httpx.Auth` handed to `ApiClient`
in place of `BearerAuth`: each request takes the next token round-robin and waits for that
token's own `Pacer`, so N tokens run at N times one token's limit. When a token answers
403 for a scope (named by `scope_of(request)`), it is left out of that scope's rotation
and the request is sent again with another token; only when no token has the scope does
the 403 reach the caller (and the table is skipped). Give the `ApiClient` settings with
`requests_per_minute=None`: the pacing happens here, per token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any

import httpx
import orjson

from .config import require
from .errors import ConfigError
from .http import parse_retry_after
from .pacing import Pacer, RateLimitInfo
from .redaction import register_secret

ScopeOf = Callable[[httpx.Request], "str | None"]


def parse_tokens(value: Any, key: str, source: str) -> list[str]:
    """Tokens from config: a list, a JSON list string, or a comma/whitespace-separated string.

    Blank entries are dropped and duplicates removed (order kept); every token is
    registered for redaction. Raises ConfigError naming `key` when none is given.
    """
    require(value, key, source, secret=True)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise ConfigError(f"{source}: '{key}' looks like a list but is not valid JSON") from None
        else:
            value = text.replace(",", " ").split()
    if not isinstance(value, Iterable) or isinstance(value, dict):
        raise ConfigError(f"{source}: '{key}' must be a token, a list of tokens, or a comma-separated string")
    tokens: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{source}: every entry of '{key}' must be a string")
        item = item.strip()
        if item and item not in tokens:
            register_secret(item)
            tokens.append(item)
    if not tokens:
        require(None, key, source, secret=True)
    return tokens


class RotatingBearerAuth(httpx.Auth):
    """`Authorization: Bearer <token>` over several tokens, round-robin, paced per token.

    Args:
        tokens: the tokens (secrets; registered for redaction).
        requests_per_minute: each token's own pace (None/0: no pacing).
        scope_of: names the scope a request needs (None: no per-scope rotation).
        burst: requests a token may send back to back before its pacing starts.
    """

    def __init__(self, tokens: Iterable[str], requests_per_minute: float | None = None, *,
                 scope_of: ScopeOf | None = None, burst: int = 1) -> None:
        self._tokens = [t for t in tokens if t]
        if not self._tokens:
            raise ConfigError("no API token given")
        for token in self._tokens:
            register_secret(token)
        self.pacers = [Pacer(requests_per_minute, burst=burst) for _ in self._tokens]
        self.sent = [0] * len(self._tokens)  # requests per token (position), for reports and tests
        self._scope_of = scope_of
        self._denied: dict[str, set[int]] = {}  # scope -> positions of tokens that lack it
        self._turn = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show a token
        return f"{type(self).__name__}(tokens=*** x{len(self._tokens)})"

    def __len__(self) -> int:
        return len(self._tokens)

    def lacking(self, scope: str) -> set[int]:
        """Positions (0-based) of the tokens known to lack `scope`."""
        with self._lock:
            return set(self._denied.get(scope, ()))

    def _pick(self, scope: str | None, tried: set[int]) -> int | None:
        with self._lock:
            denied = self._denied.get(scope, set()) if scope else set()
            candidates = [i for i in range(len(self._tokens)) if i not in denied and i not in tried]
            if not candidates:
                return None
            position = candidates[self._turn % len(candidates)]
            self._turn += 1
            return position

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scope = self._scope_of(request) if self._scope_of else None
        tried: set[int] = set()
        position = self._pick(scope, tried)
        if position is None:  # every token lacks the scope: one request brings back the 403
            position = 0
        while True:
            self.pacers[position].acquire()
            with self._lock:
                self.sent[position] += 1
            request.headers["Authorization"] = f"Bearer {self._tokens[position]}"
            response = yield request
            self._observe(position, response)
            if response.status_code != 403 or scope is None:
                return
            with self._lock:
                self._denied.setdefault(scope, set()).add(position)
            tried.add(position)
            position = self._pick(scope, tried)
            if position is None:
                return

    def _observe(self, position: int, response: httpx.Response) -> None:
        pacer = self.pacers[position]
        pacer.observe(RateLimitInfo.from_headers(response.headers))
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait:
                pacer.hold(min(wait, 120.0))
