"""The descriptor every vendor package exports: everything generic code needs to know about one
vendor API, so that adding a vendor is one package and one registry line."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

import httpx

from exporter.settings import SourceBase
from exporter.simulator.world import Credentials, VendorSim, World
from exporter.source import Source

S = TypeVar("S", bound=SourceBase)
# Read once per crawl (the customer list), or once per customer.
Scope = Literal["crawl", "customer"]
S_contra = TypeVar("S_contra", bound=SourceBase, contravariant=True)


class SourceFactory(Protocol[S_contra]):
    def __call__(
        self,
        settings: S_contra,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Source[Any]: ...


@dataclass(frozen=True)
class Vendor(Generic[S]):
    # The config `type:` and the `provider` label value.
    name: str
    # The config section: a SourceBase whose `vendor` field is Literal[name].
    settings: type[S]
    source: SourceFactory[S]
    # Every endpoint the source calls, with its default TTL in seconds (None: the configured
    # cache.ttl_seconds). `cache.endpoints` in the config may override each.
    endpoints: Mapping[str, float | None]
    simulator: Callable[[World], VendorSim]
    # The demo's credential settings for this vendor, given the simulator's keys.
    demo: Callable[[Credentials], dict[str, Any]] = field(repr=False)
    # For sizing (`--config.check`'s plan and the budget gauges): the endpoints a crawl of the
    # vendor's usual API shape reads, each with its scope and the calls one read costs
    # (pages: an estimate). Endpoints left out are not counted.
    calls: Mapping[str, tuple[Scope, float]] = field(default_factory=dict)

    def build_source(
        self,
        settings: SourceBase,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Source[Any]:
        """Construct the source for a validated config section; this never calls the vendor."""
        if not isinstance(settings, self.settings):
            raise TypeError(f"{self.name}: settings of type {type(settings).__name__}")
        return self.source(settings, transport=transport, clock=clock)
