"""Keeps secrets out of messages, URLs and logs."""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SENSITIVE_QUERY_PARAMS = frozenset(
    {"token", "api_key", "apikey", "key", "secret", "client_secret", "access_token",
     "signature", "sig", "x-amz-signature", "password"}
)
MASK = "***"

_registered: set[str] = set()
_lock = threading.Lock()
# secrets shorter than this are not registered: masking "ab" everywhere would mangle text
_MIN_SECRET_LENGTH = 6


def register_secret(value: str | None) -> None:
    """Remember a secret so that `redact` masks it wherever it appears."""
    if value and isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)


def redact_url(url: str) -> str:
    """Masks credentials and sensitive query parameters in a URL."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = urlencode(
        [(k, MASK if k.lower() in SENSITIVE_QUERY_PARAMS else v)
         for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*",
    )
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def redact(text: str) -> str:
    """Masks every registered secret (and bearer tokens) in free text."""
    text = str(text)
    with _lock:
        secrets = sorted(_registered, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+", r"\1" + MASK, text)
