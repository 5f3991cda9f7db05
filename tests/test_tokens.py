"""Access tokens that live less than the renewal margin are not fetched again on every call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.simulator.app import Simulator
from exporter.vendors.backupify.settings import BackupifySettings
from exporter.vendors.backupify.simulator import BackupifySim
from exporter.vendors.backupify.source import BackupifySource
from tests.conftest import (
    ServerThread,
    backupify_source,
    cloudally_source,
    exporter_for,
    scrape,
    value,
)

# Shorter than the sources' default token_margin_seconds (60).
SHORT_TTL = 30.0


@pytest.fixture
def short_lived() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(customers=6, seats_per_customer=2, seed=3, token_ttl=SHORT_TTL)
    with ServerThread(sim.app()) as server:
        yield sim, server.url


def token_fetches(sim: Simulator, vendor: str) -> int:
    if vendor == "cloudally":
        return sim.calls["cloudally.auth"] + sim.calls["cloudally.refresh"]
    return sim.calls[f"{vendor}.token"]


def data_calls(sim: Simulator, vendor: str) -> int:
    fetching = {"token", "auth", "refresh"}
    return sum(
        count
        for route, count in sim.calls.items()
        if route.startswith(f"{vendor}.") and route.split(".", 1)[1] not in fetching
    )


@pytest.mark.parametrize(
    ("vendor", "source"), [("backupify", backupify_source), ("cloudally", cloudally_source)]
)
def test_a_token_shorter_than_the_margin_is_fetched_once_per_crawl(
    short_lived: tuple[Simulator, str], vendor: str, source: Any
) -> None:
    sim, url = short_lived
    with ServerThread(exporter_for(source(url))) as exporter:
        body = scrape(exporter)
    assert value(body, "saas_backup_up", source=vendor) == 1
    assert data_calls(sim, vendor) >= 5, "the crawl made many authenticated calls"
    assert token_fetches(sim, vendor) == 1


def test_a_short_token_is_renewed_at_half_its_lifetime(
    short_lived: tuple[Simulator, str],
) -> None:
    sim, url = short_lived
    ttl = 2.0
    sim.part(BackupifySim).tokens.ttl = ttl
    backupify = BackupifySource(BackupifySettings.model_validate(backupify_source(url)))
    instance = str(sim.part(BackupifySim).fleet.instances[0].id)

    async def scenario() -> tuple[str, str, str]:
        started = time.monotonic()
        first = await backupify.tokens.get()
        await asyncio.sleep(0.25 * ttl)
        same = await backupify.tokens.get()
        # Past half the lifetime and before the expiry: a new token, which the vendor takes.
        await asyncio.sleep(max(0.7 * ttl - (time.monotonic() - started), 0))
        renewed = await backupify.tokens.get()
        await backupify.api.active(instance)
        await backupify.aclose()
        return first, same, renewed

    first, same, renewed = asyncio.run(scenario())
    assert same == first
    assert renewed != first
    assert sim.calls["backupify.token"] == 2
    assert sim.calls["backupify.active_backup"] == 1
