"""Instants: every vendor timestamp is parsed to an aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime

import pendulum


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_instant(value: str | None) -> datetime | None:
    """Parses ISO 8601 with `Z`, an offset, or none (taken as UTC); None stays None."""
    if not value:
        return None
    parsed = pendulum.parse(value, tz="UTC")
    assert isinstance(parsed, datetime)
    return parsed.in_timezone("UTC") if hasattr(parsed, "in_timezone") else parsed.astimezone(UTC)


def iso(value: datetime) -> str:
    """UTC ISO 8601 with a `Z`, as the APIs accept it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_start_date(value: str | datetime | None, key: str = "start_date") -> datetime | None:
    """Parses the `start_date` config value, naming the key when it is not a date."""
    from .errors import ConfigError

    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return parse_instant(str(value))
    except Exception:
        raise ConfigError(
            f"{key}={value!r} is not a date", hint="use ISO 8601, e.g. 2026-01-31 or 2026-01-31T00:00:00Z"
        ) from None
