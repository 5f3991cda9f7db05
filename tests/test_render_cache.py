"""The cached exposition: per-customer chunks and a per-scrape tail, byte for byte what the
whole-document renderer gives, with unchanged customers never rendered again."""

from __future__ import annotations

import dataclasses
import gzip

import pytest

from exporter import catalogue as m
from exporter.config import MetricsConfig
from exporter.crawl import CrawlView
from exporter.exposition import Exposition
from exporter.model import BackupRun, Customer, Seat, Snapshot
from exporter.refresh import SourceState
from exporter.render import dynamic_families, render, static_families
from exporter.source import Part
from tests.test_render import NOW, parts_of
from tests.test_render import states as golden_states

CONFIGS = {
    "default": MetricsConfig(),
    "capped": MetricsConfig(max_seat_series=2),
    "no-seats": MetricsConfig(per_seat_series=False),
}


def states() -> list[SourceState]:
    """The golden states, with the backup runs only Backupify reports added."""
    datto, eu, live = golden_states()
    part = live.parts["7"]
    records = dataclasses.replace(
        part.records,
        active_backups=(BackupRun("7", "701", NOW - 300, None, "running"),),
        finished_backups=(
            BackupRun("7", "701", NOW - 90000, NOW - 86000, "success"),
            BackupRun("7", "702", None, None, "failed"),
        ),
    )
    live = changed(live, **{"7": dataclasses.replace(part, records=records)})
    # The customer list read since the start holds each served customer.
    return [dataclasses.replace(s, listed_customers=len(s.parts)) for s in (datto, eu, live)]


def changed(state: SourceState, **parts: Part | None) -> SourceState:
    """The state with some parts replaced (None: gone), as a new generation."""
    new = {k: v for k, v in state.parts.items() if parts.get(k, v) is not None}
    new.update({k: v for k, v in parts.items() if v is not None})
    return dataclasses.replace(state, parts=new, generation=state.generation + 1)


def with_seat(part: Part, seat_id: str) -> Part:
    seat = Seat(part.customer_id, seat_id, seat_id.upper(), "user", "licensed", NOW - 600, True)
    records = dataclasses.replace(part.records, seats=(*part.records.seats, seat))
    return dataclasses.replace(part, records=records)


def scrape(exposition: Exposition, fleet: list[SourceState], *, openmetrics: bool) -> bytes:
    """The cached body, checked against the whole-document render, plain and gzipped."""
    expected = render(fleet, exposition._config, NOW, openmetrics=openmetrics)
    plain = exposition.body(fleet, NOW, openmetrics=openmetrics, gzip=False).content
    zipped = exposition.body(fleet, NOW, openmetrics=openmetrics, gzip=True).content
    assert plain == expected
    assert gzip.decompress(zipped) == expected
    return plain


def test_customer_metrics_lead_with_source_and_customer_id() -> None:
    """Chunks laid out in (source, customer_id) order are sorted only if every customer-level
    metric sorts by those labels first."""
    customer_level = [d for d in m.CATALOGUE if "customer_id" in d.labels]
    assert len(customer_level) > 20
    for metric in customer_level:
        assert metric.labels[:2] == ("source", "customer_id"), metric.name
    assert len({d.name for d in m.CATALOGUE}) == len(m.CATALOGUE)


def test_static_and_dynamic_families_are_disjoint_and_cover_the_catalogue() -> None:
    static = {f.name for f in static_families(states(), MetricsConfig())}
    dynamic = {f.name for f in dynamic_families(states(), NOW)}
    assert not static & dynamic
    assert static | dynamic == {d.name for d in m.CATALOGUE}, "the tests show every metric"


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("openmetrics", [False, True])
def test_cached_body_is_the_rendered_document(config: MetricsConfig, openmetrics: bool) -> None:
    exposition = Exposition(config)
    fleet = states()
    scrape(exposition, fleet, openmetrics=openmetrics)
    assert scrape(exposition, list(reversed(fleet)), openmetrics=openmetrics)
    # Reversed, the generations' key differs: assembled again, all chunks reused.
    assert exposition.chunks.encoded == 3


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("openmetrics", [False, True])
def test_parts_that_change_or_go_away(config: MetricsConfig, openmetrics: bool) -> None:
    exposition = Exposition(config)
    datto, eu, live = states()
    scrape(exposition, [datto, eu, live], openmetrics=openmetrics)
    assert (exposition.chunks.encoded, len(exposition.chunks)) == (3, 3)

    # One customer gains a seat (over the cap of 2 when capped): only it is encoded again.
    datto = changed(datto, **{"1001": with_seat(datto.parts["1001"], "s-e")})
    scrape(exposition, [datto, eu, live], openmetrics=openmetrics)
    assert (exposition.chunks.encoded, len(exposition.chunks)) == (4, 3)

    # A new customer; then one that left, whose chunk is dropped.
    newcomer = Part("0999", Snapshot(customers=(Customer("0999", "N", "n", "p", "active"),)), 0, 0)
    datto = changed(datto, **{"0999": newcomer})
    scrape(exposition, [datto, eu, live], openmetrics=openmetrics)
    datto = changed(datto, **{"1002": None})
    scrape(exposition, [datto, eu, live], openmetrics=openmetrics)
    assert (exposition.chunks.encoded, len(exposition.chunks)) == (5, 3)

    # The same records failing to refresh: customer_up goes to 0.
    datto = changed(datto, **{"1001": dataclasses.replace(datto.parts["1001"], error="boom")})
    body = scrape(exposition, [datto, eu, live], openmetrics=openmetrics)
    assert b'saas_backup_customer_up{customer_id="1001",source="datto"} 0.0' in body
    assert exposition.chunks.encoded == 6

    # A source whose customers are all gone, listed (no customers) or not (no data at all).
    live = dataclasses.replace(live, parts={}, generation=live.generation + 1)
    scrape(exposition, [datto, eu, live], openmetrics=openmetrics)
    live = dataclasses.replace(live, listed=False, generation=live.generation + 1)
    scrape(exposition, [datto, eu, live], openmetrics=openmetrics)
    assert len(exposition.chunks) == 2
    assert exposition.chunks.encoded == 6


def test_a_fleet_scrape_encodes_only_the_customer_that_changed() -> None:
    snapshot = Snapshot(
        customers=tuple(Customer(str(c), f"C{c}", "d", "p", "active") for c in range(200)),
        seats=tuple(
            Seat(str(c), f"s{s}", "S", "user", "licensed", NOW - s, True)
            for c in range(200)
            for s in range(3)
        ),
    )
    fleet = [dataclasses.replace(states()[2], parts=parts_of(snapshot))]
    exposition = Exposition(MetricsConfig())
    scrape(exposition, fleet, openmetrics=False)
    scrape(exposition, fleet, openmetrics=True)
    assert exposition.chunks.encoded == 400
    fleet = [changed(fleet[0], **{"42": with_seat(fleet[0].parts["42"], "new")})]
    scrape(exposition, fleet, openmetrics=False)
    assert exposition.chunks.encoded == 401
    # The OpenMetrics chunk of the old records went with them.
    assert len(exposition.chunks) == 399


def test_counters_and_gauges_move_on_every_scrape_without_a_render() -> None:
    exposition = Exposition(MetricsConfig())
    datto, eu, live = states()
    exposition.body([datto, eu, live], NOW, openmetrics=False, gzip=False)
    datto.stats.requests["seats", "200"] += 10
    datto = dataclasses.replace(datto, up=False, crawl=CrawlView(True, 5, 4, 1, NOW - 60, NOW))
    later = exposition.body([datto, eu, live], NOW + 10, openmetrics=False, gzip=True)
    text = gzip.decompress(later.content)
    assert exposition.renders == 1
    assert text == render([datto, eu, live], MetricsConfig(), NOW + 10)
    for line in (
        b'saas_backup_api_requests_total{code="200",endpoint="seats",source="datto"} 15.0',
        b'saas_backup_up{source="datto"} 0.0',
        b'saas_backup_crawl_progress{source="datto"} 1.0',
        b'saas_backup_crawl_customers{source="datto",state="pending"} 0.0',
        b'saas_backup_customer_data_age_seconds{customer_id="1002",source="datto"} 55.0',
        b'saas_backup_cache_age_seconds{source="datto"} 100.0',
    ):
        assert line in text
