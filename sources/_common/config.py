"""Configuration shared by every source: the `http` section and its validation."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import BaseConfiguration

from .errors import ConfigError
from .http import HttpSettings


@configspec
class HttpConfiguration(BaseConfiguration):
    """`[sources.<name>.http]`: client tuning; unset keys take the source's defaults."""

    timeout_seconds: float | None = None
    max_retries: int | None = None
    backoff_initial_seconds: float | None = None
    backoff_max_seconds: float | None = None
    retry_after_max_seconds: float | None = None
    requests_per_minute: float | None = None
    concurrency: int | None = None
    max_requests: int | None = None


def http_settings(config: HttpConfiguration | dict | None, **source_defaults: Any) -> HttpSettings:
    """Merges user config over the source's defaults over the global defaults."""
    values: dict[str, Any] = dict(source_defaults)
    if config is not None:
        items = config.items() if isinstance(config, dict) else (
            (f.name, getattr(config, f.name, None)) for f in fields(HttpSettings))
        for key, value in items:
            if key not in {f.name for f in fields(HttpSettings)}:
                raise ConfigError(f"unknown http setting '{key}'",
                                  hint=f"known keys: {', '.join(f.name for f in fields(HttpSettings))}")
            if value is not None:
                values[key] = value
    settings = HttpSettings(**values)
    if settings.concurrency < 1:
        raise ConfigError(f"http.concurrency={settings.concurrency} must be at least 1")
    if settings.max_retries < 0:
        raise ConfigError(f"http.max_retries={settings.max_retries} must not be negative")
    return settings


def require(value: Any, key: str, source: str, *, secret: bool = False) -> Any:
    """Raises a ConfigError naming the key and where to set it when `value` is empty."""
    if value in (None, ""):
        where = "secrets.toml" if secret else "config.toml"
        env = f"SOURCES__{source.upper()}__{key.upper()}"
        raise ConfigError(f"{source}: '{key}' is not set",
                          hint=f"set it under [sources.{source}] in .dlt/{where} or as {env}")
    return value


def unknown_config_keys(source: str, known: set[str]) -> list[str]:
    """Keys set for `source` in .dlt/*.toml or SOURCES__<NAME>__* that it does not take.

    dlt ignores such keys silently, so a typo (`sweep_interval_hour`) would quietly keep
    the default; the CLI refuses them instead. Returns dotted names (`http.max_retrys`).
    """
    import os

    import dlt

    http_keys = {f.name for f in fields(HttpSettings)}
    found: set[str] = set()
    for provider in dlt.config.config_providers:
        doc = getattr(provider, "_config_doc", None)
        section = (doc or {}).get("sources", {}).get(source) if isinstance(doc, dict) else None
        if isinstance(section, dict):
            for key, value in section.items():
                if key == "http" and isinstance(value, dict):
                    found |= {f"http.{k}" for k in value}
                else:
                    found.add(key)
    prefix = f"SOURCES__{source.upper()}__"
    for name in os.environ:
        if name.startswith(prefix):
            parts = name[len(prefix):].lower().split("__")
            found.add(".".join(parts[:2]))
    allowed = known | {f"http.{k}" for k in http_keys}
    return sorted(k for k in found if k not in allowed)


def refuse_unknown_keys(source: str, known: set[str]) -> None:
    """Raises a ConfigError naming each unknown key and the closest known one."""
    import difflib

    unknown = unknown_config_keys(source, known)
    if not unknown:
        return
    allowed = sorted((known - {"http"}) | {f"http.{f.name}" for f in fields(HttpSettings)})
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise ConfigError(f"{source}: unknown configuration key {', '.join(hints)}",
                      hint=f"fix it in .dlt/*.toml [sources.{source}] or SOURCES__{source.upper()}__*; "
                           f"known keys: {', '.join(allowed)}")
