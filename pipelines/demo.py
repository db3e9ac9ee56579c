"""The demo load: every source's simulator started on loopback and loaded, as `meeting-elt
demo` does. Also what `meeting-elt docs` and the tests load, so all three see the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import dlt

from . import registry
from .runner import RunResult, make_pipeline, run_source


@dataclass
class DemoLoad:
    source: str
    simulator: Any  # stopped after the load; its data stays readable
    pipeline: dlt.Pipeline
    result: RunResult


def load_demo(destination: Any, pipelines_dir: str, names: Iterable[str] | None = None, *,
              wrap: Callable[[str], Any] | None = None,
              simulator_kwargs: dict[str, dict[str, Any]] | None = None) -> list[DemoLoad]:
    """Starts each source's simulator (the registry's demo settings), loads it into
    `destination` (dataset = the source's name), stops it. `wrap(name)` gives a context
    manager around each load (the CLI's progress line); `simulator_kwargs` overrides the
    demo's simulator settings per source."""
    loads = []
    for name in names or list(registry.SOURCES):
        entry = registry.get(name)
        kwargs = {**entry.demo_simulator_kwargs, **(simulator_kwargs or {}).get(name, {})}
        sim = entry.simulator_class()(**kwargs)
        sim.start()
        try:
            pipeline = make_pipeline(name, destination=destination, pipelines_dir=pipelines_dir)
            if wrap is None:
                result = run_source(name, pipeline=pipeline, **entry.demo_config(sim))
            else:
                with wrap(name):
                    result = run_source(name, pipeline=pipeline, **entry.demo_config(sim))
        finally:
            sim.stop()
        loads.append(DemoLoad(name, sim, pipeline, result))
    return loads
