"""Test isolation: no project config leaks in, every simulator is stopped."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
# telemetry off: tests never talk to the internet
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"


@pytest.fixture
def start_sim() -> Iterator:
    """`start_sim(SimulatorClass, **kwargs)` starts a simulator and stops it after the test."""
    started = []

    def start(cls, **kwargs):
        sim = cls(**kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
