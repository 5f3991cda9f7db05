"""Sizing: the vendor calls per hour a source's TTLs need for a number of customers, against its
budget. Shown by ``--config.check`` before deploying and exported as budget gauges at run time,
from the same arithmetic."""

from __future__ import annotations

import math
from dataclasses import dataclass

from exporter import vendors
from exporter.cache import EndpointCache
from exporter.config import CacheConfig
from exporter.settings import SourceBase
from exporter.vendor import Scope


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    endpoint: str
    scope: Scope
    ttl: float
    calls_per_hour: float


@dataclass(frozen=True, slots=True)
class SourcePlan:
    name: str
    vendor: str
    customers: int
    endpoints: tuple[EndpointPlan, ...]
    # Calls one crawl of every customer makes.
    crawl_calls: float
    # Calls per hour the budget allows after its reserve (a configured calls_per_hour); None
    # when only the vendor can say (its budget headers) or there is no limit.
    budget_per_hour: float | None

    @property
    def calls_per_hour(self) -> float:
        return sum(e.calls_per_hour for e in self.endpoints)

    @property
    def customer_interval(self) -> float | None:
        """How often each customer is read again: its shortest TTL."""
        ttls = [e.ttl for e in self.endpoints if e.scope == "customer"]
        return min(ttls) if ttls else None

    def cover_seconds(self, allowed_per_hour: float | None) -> float | None:
        """How long reading every customer once takes at the allowed rate."""
        if not allowed_per_hour:
            return None
        return self.crawl_calls / allowed_per_hour * 3600


def plan_source(settings: SourceBase, cache: CacheConfig, customers: int) -> SourcePlan:
    vendor = vendors.get(settings.vendor)
    ttls = EndpointCache(cache, defaults=vendor.endpoints)
    endpoints = []
    crawl_calls = 0.0
    for endpoint, (scope, calls) in vendor.calls.items():
        reads = customers if scope == "customer" else 1
        ttl = ttls.ttl(endpoint)
        endpoints.append(EndpointPlan(endpoint, scope, ttl, reads * calls * 3600 / ttl))
        crawl_calls += reads * calls
    budget = settings.budget
    allowed = None
    if budget.calls_per_hour is not None:
        allowed = budget.calls_per_hour * (1 - budget.reserve_ratio)
    return SourcePlan(
        settings.name, settings.vendor, customers, tuple(endpoints), crawl_calls, allowed
    )


def duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    if seconds >= 5400:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 90:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:g}s"


def describe(plan: SourcePlan, reserve_ratio: float) -> list[str]:
    """The plan as lines for a person sizing TTLs."""
    interval = plan.customer_interval
    every = f"each customer every {duration(interval)}" if interval else "no per-customer reads"
    lines = [
        f"{plan.name} ({plan.vendor}), {plan.customers} customers: "
        f"{math.ceil(plan.calls_per_hour)} calls/h, {every}, "
        f"{math.ceil(plan.crawl_calls)} calls to read every customer once"
    ]
    for e in plan.endpoints:
        lines.append(
            f"  {e.endpoint:<20} per {e.scope:<8} every {duration(e.ttl):>6} "
            f"{math.ceil(e.calls_per_hour):>8} calls/h"
        )
    if plan.budget_per_hour is None:
        lines.append(
            "  budget: what the vendor reports (X-API-Limit-* headers), less the "
            f"{reserve_ratio:.0%} reserve; set budget.calls_per_hour if it reports none"
        )
    else:
        share = plan.calls_per_hour / plan.budget_per_hour
        verdict = "fits" if share <= 1 else "does NOT fit: raise the TTLs or the budget"
        cover = plan.cover_seconds(plan.budget_per_hour)
        assert cover is not None
        lines.append(
            f"  budget: {math.floor(plan.budget_per_hour)} calls/h after the "
            f"{reserve_ratio:.0%} reserve: {verdict} ({share:.0%}); "
            f"every customer read once in {duration(round(cover))} at that rate"
        )
    return lines
