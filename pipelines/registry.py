"""Every source the CLI knows: its dlt source, its access check, and its demo simulator.

A new source adds one `SourceEntry` here; nothing else in the CLI changes.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SourceEntry:
    name: str
    module: str  # the package that holds `<name>` and `check`
    simulator: str  # "module:Class" of its simulator
    # simulator arguments for `demo`: small, limits off
    demo_simulator_kwargs: dict[str, Any]

    def demo_config(self, sim: Any) -> dict[str, Any]:
        """Source arguments that point the source at a started simulator, pacing off."""
        return {**sim.source_config(), "http": {"requests_per_minute": 0, "concurrency": 4}}

    def source(self) -> Callable:
        """The source function; the sources it makes carry the package's table and column
        descriptions (`<module>.descriptions`, when there is one) as dlt hints."""
        fn = getattr(importlib.import_module(self.module), self.name)
        try:
            described = importlib.import_module(f"{self.module}.descriptions")
        except ModuleNotFoundError:
            return fn
        from sources._common.descriptions import describe

        @functools.wraps(fn)
        def with_descriptions(*args: Any, **kwargs: Any) -> Any:
            return describe(fn(*args, **kwargs), described.TABLES, described.COLUMNS)

        return with_descriptions

    def check(self) -> Callable:
        return importlib.import_module(self.module).check

    def simulator_class(self) -> type:
        module, cls = self.simulator.split(":")
        return getattr(importlib.import_module(module), cls)


SOURCES: dict[str, SourceEntry] = {}


def register(entry: SourceEntry) -> None:
    SOURCES[entry.name] = entry


register(SourceEntry(
    name="meetric_partner",
    module="sources.meetric_partner",
    simulator="simulators.meetric_partner:MeetricPartnerSimulator",
    demo_simulator_kwargs={"conversations": 120, "requests_per_minute": None},
))


register(SourceEntry(
    name="meemo",
    module="sources.meemo",
    simulator="simulators.meemo:MeemoSimulator",
    demo_simulator_kwargs={"organizations": 2, "meetings": 40},
))


register(SourceEntry(
    name="meetlog",
    module="sources.meetlog",
    simulator="simulators.meetlog:MeetlogSimulator",
    demo_simulator_kwargs={"transcripts": 150, "projects": 5, "requests_per_minute": None},
))


register(SourceEntry(
    name="convo",
    module="sources.convo",
    simulator="simulators.convo:ConvoSimulator",
    demo_simulator_kwargs={"conversations": 150, "tier": "professional"},
))


register(SourceEntry(
    name="meetric",
    module="sources.meetric",
    simulator="simulators.meetric:MeetricSimulator",
    demo_simulator_kwargs={"accounts": 2, "conversations": 150, "rate_limit": None},
))


def get(name: str) -> SourceEntry:
    """The entry for `name`, or a ValueError listing the known sources."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source '{name}'; known: {', '.join(sorted(SOURCES))}") from None
