"""What every vendor's simulator part is built from, and what it must offer the core.

The core (fleet, faults, scenarios, serving) never names a vendor: it builds one part per
registered vendor from the shared ``World`` and serves the routes each part declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from exporter.simulator.fleet import Fleet
from exporter.simulator.routes import VendorRoute

# spec: the published documents' shapes; live: what the real APIs return; mixed: both, as each
# vendor's part defines it (by customer where the shapes are per customer; for a vendor whose
# listings differ, both listings over the same data).
Shape = Literal["spec", "live", "mixed"]


@dataclass(frozen=True)
class Credentials:
    """The keys the fake vendors accept. Demo values, meant to be public."""

    public_key: str = "demo-public"
    private_key: str = "demo-private"
    client_id: str = "demo-client"
    client_secret: str = "demo-secret"


@dataclass
class World:
    fleet: Fleet
    seed: int
    # How many customers a vendor with its own, smaller customer list should hold.
    customers: int
    start: float
    credentials: Credentials
    token_ttl: float
    shape: Shape = "mixed"

    def customer_names(self, count: int, offset: int = 0) -> list[str]:
        """``count`` of the shared fleet's customer names, from ``offset`` on and round again,
        for a vendor whose customers are some of the same MSP's customers."""
        names = [c.name for c in self.fleet.customers] or ["Contoso"]
        return [names[(offset + i) % len(names)] for i in range(count)]


@dataclass(frozen=True)
class Trouble:
    """One problem a scenario planted, for tests and people to look for."""

    kind: str
    customer_id: str
    customer_name: str
    item_id: str = ""


class VendorSim(Protocol):
    """One vendor's fake API over the shared world."""

    def routes(self) -> list[VendorRoute]: ...

    def heal(self) -> None:
        """Nothing an operator should be told about."""

    def incident(self) -> list[Trouble]:
        """Plant this vendor's share of the incident scenario (after ``heal``)."""
        ...
