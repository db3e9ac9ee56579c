"""Local simulators of the vendor APIs, served over real HTTP on loopback.

`SIMULATORS` maps a source name to its simulator class; `python -m simulators NAME` serves
one in its own process (for benchmarks and the demo).
"""

from __future__ import annotations

from .base import Faults, SimClock, Simulator
from .convo import ConvoSimulator
from .meemo import MeemoSimulator
from .meetlog import MeetlogSimulator
from .meetric import MeetricSimulator
from .meetric_partner import MeetricPartnerSimulator

SIMULATORS: dict[str, type[Simulator]] = {
    "meetric_partner": MeetricPartnerSimulator,
    "meetric": MeetricSimulator,
    "meetlog": MeetlogSimulator,
    "convo": ConvoSimulator,
    "meemo": MeemoSimulator,
}

__all__ = ["SIMULATORS", "Faults", "SimClock", "Simulator", "MeetricPartnerSimulator"]
