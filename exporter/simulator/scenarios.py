"""Named states of the simulated vendors, for end-to-end tests of the alerts and for trying them.

- ``demo``: the generated fleets as they are, with a bit of everything.
- ``healthy``: nothing an operator should be told about.
- ``incident``: healthy, except each vendor's share of trouble (for the shipped vendors: one
  customer's seats stale for 3 days, one failed restore and one backup running for 20 hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exporter.simulator.app import Simulator
from exporter.simulator.world import Trouble

SCENARIOS: Final = ("demo", "healthy", "incident")


@dataclass(frozen=True)
class Incident:
    troubles: tuple[Trouble, ...]

    def of(self, kind: str) -> Trouble:
        found = [t for t in self.troubles if t.kind == kind]
        if len(found) != 1:
            raise LookupError(f"{len(found)} troubles of kind {kind!r}")
        return found[0]


def heal(sim: Simulator) -> None:
    for part in sim.parts.values():
        part.heal()


def make_incident(sim: Simulator) -> Incident:
    heal(sim)
    return Incident(tuple(t for part in sim.parts.values() for t in part.incident()))


def apply(sim: Simulator, scenario: str) -> None:
    if scenario == "healthy":
        heal(sim)
    elif scenario == "incident":
        make_incident(sim)
    elif scenario != "demo":
        raise ValueError(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
