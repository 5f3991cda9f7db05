"""A vendor is one package and one registry line: a tiny vendor defined only here (settings, one
endpoint, a simulator route, parsing) goes through config, source, cache, render and /metrics
on a real socket without a change to any file outside tests/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from pydantic import Field, HttpUrl, SecretStr
from starlette.requests import Request

from exporter import vendors
from exporter.app import build_app
from exporter.cli import demo_config
from exporter.config import ConfigError, build_config
from exporter.http import ApiStats, VendorClient
from exporter.model import ApplicationBackup, Customer, Snapshot, backup_status
from exporter.parsing import Int, Problems, Text, Timestamp, VendorModel, parse_records
from exporter.settings import SourceBase
from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.simulator.routes import VendorRoute, error
from exporter.simulator.world import Credentials, Trouble, World
from exporter.source import Listing, Part, Reading, Store, read_root
from exporter.vendor import Vendor
from tests.conftest import ServerThread, series, value

NAME = "acme"


class AcmeSettings(SourceBase):
    SECRETS = ("token",)
    REQUIRED_SECRETS = ("token",)

    vendor: Literal["acme"] = Field(alias="type")
    base_url: HttpUrl = HttpUrl("https://api.acme.invalid")
    token: SecretStr | None = None
    token_file: Path | None = None


class TenantRecord(VendorModel):
    id: Text = None
    name: Text = None
    users: Int = None
    lastBackup: Timestamp = None
    state: Text = None


def parse_tenants(body: Any, problems: Problems) -> list[TenantRecord]:
    items = body.get("tenants") if isinstance(body, dict) else None
    if not isinstance(items, list):
        problems.add("tenants", "not a list")
        return []
    return parse_records(items, TenantRecord, problems, "tenants", lambda r: bool(r.id))


class AcmeSource:
    vendor = NAME

    def __init__(
        self,
        settings: AcmeSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = settings.name
        self.stats = ApiStats()
        self._client = VendorClient(
            base_url=str(settings.base_url),
            retry=settings.retry,
            timeout=settings.timeout_seconds,
            connect_timeout=settings.connect_timeout_seconds,
            headers={"X-Acme-Token": settings.secret("token")},
            stats=self.stats,
            transport=transport,
        )
        self.pacer = self._client.pacer

    async def _load(self) -> list[TenantRecord]:
        body = await self._client.get_json("tenants", "/acme/v1/tenants")
        return parse_tenants(body, Problems(self.stats))

    async def listing(self, store: Store) -> Listing[TenantRecord]:
        tenants, reading = await read_root(store, "tenants", "tenants", self._load)
        return reading.listing({r.id or "": r for r in tenants})

    async def read(self, store: Store, customer_id: str, unit: TenantRecord) -> Part:
        # Everything Acme says about a tenant comes in the tenant list.
        return Reading(store).part(
            customer_id,
            Snapshot(
                customers=(
                    Customer(customer_id, unit.name or "", "", "acme_suite", "active", unit.users),
                ),
                applications=(
                    ApplicationBackup(
                        customer_id, "mail", unit.lastBackup, backup_status(unit.state)
                    ),
                ),
            ),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


class AcmeSim:
    """Acme serves the shared fleet's customers as tenants."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.state = "ok"

    async def _tenants(self, request: Request, now: float) -> Any:
        if request.headers.get("x-acme-token") != self.world.credentials.client_secret:
            return error(403, "bad token")
        return {
            "tenants": [
                {
                    "id": f"t-{c.id}",
                    "name": c.name,
                    "users": len(c.seats),
                    "lastBackup": int(now - 3600),
                    "state": self.state,
                }
                for c in self.world.fleet.customers
            ]
        }

    def routes(self) -> list[VendorRoute]:
        return [VendorRoute("/acme/v1/tenants", "tenants", self._tenants, None)]

    def heal(self) -> None:
        self.state = "ok"

    def incident(self) -> list[Trouble]:
        self.state = "failed"
        first = self.world.fleet.customers[0]
        return [Trouble("acme_failed", f"t-{first.id}", first.name)]


def _demo(keys: Credentials) -> dict[str, Any]:
    return {"token": keys.client_secret}


ACME: Vendor[AcmeSettings] = Vendor(
    name=NAME,
    settings=AcmeSettings,
    source=AcmeSource,
    endpoints={"tenants": 120.0},
    simulator=AcmeSim,
    demo=_demo,
)


@pytest.fixture
def acme() -> Iterator[Vendor[AcmeSettings]]:
    vendors.register(ACME)
    try:
        yield ACME
    finally:
        vendors.unregister(NAME)


def scrape(url: str) -> str:
    response = httpx.get(
        url + "/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "15"}, timeout=30
    )
    assert response.status_code == 200
    return response.text


def test_a_vendor_defined_in_tests_runs_end_to_end(acme: Vendor[AcmeSettings]) -> None:
    sim = Simulator(customers=3, seats_per_customer=4, seed=5)
    assert isinstance(sim.part(AcmeSim), AcmeSim)
    with ServerThread(sim.app()) as sim_server:
        config = demo_config(sim_server.url, sim)
        assert [s.vendor for s in config.sources][-1] == NAME
        acme_only = build_config(
            {
                "cache": {"warm_up": False, "endpoints": {"tenants": 0.2}},
                "sources": [
                    {
                        "name": "lab",
                        "type": NAME,
                        "base_url": sim_server.url,
                        "token": "demo-secret",
                        "retry": {"attempts": 1},
                    }
                ],
            }
        )
        with ServerThread(build_app(acme_only)) as exporter:
            body = scrape(exporter.url)
            assert value(body, "saas_backup_up", source="lab") == 1
            assert value(body, "saas_backup_source_info", source="lab", provider=NAME) == 1
            assert value(body, "saas_backup_api_requests_total", endpoint="tenants") == 1
            names = {
                labels["customer_name"]
                for labels, _ in series(body, "saas_backup_customer_info", source="lab")
            }
            assert names == {c.name for c in sim.fleet.customers}
            first = sim.fleet.customers[0]
            cid = f"t-{first.id}"
            assert value(body, "saas_backup_customer_seats_used", customer_id=cid) == len(
                first.seats
            )
            backed_up = value(
                body, "saas_backup_application_last_backup_timestamp_seconds", customer_id=cid
            )
            assert 0 < time.time() - backed_up < 3600 + 60
            status = series(body, "saas_backup_application_last_backup_status", customer_id=cid)
            assert [labels["status"] for labels, _ in status] == ["success"]

            # The simulator core's faults reach its route like any other vendor's, and the
            # cache keeps its last good data while the source shows down.
            sim.set_faults([parse_fault("500@tenants")])
            deadline = time.monotonic() + 20
            while value(body, "saas_backup_up", source="lab") == 1:
                assert time.monotonic() < deadline, "the fault never showed"
                body = scrape(exporter.url)
            assert value(body, "saas_backup_api_requests_total", endpoint="tenants", code="500")
            assert len(series(body, "saas_backup_customer_info", source="lab")) == len(names)


def test_its_config_section_is_validated_and_its_endpoints_are_known(
    acme: Vendor[AcmeSettings],
) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"sources": [{"name": "lab", "type": NAME, "base_url": "http://x"}]})
    assert info.value.problems == ["sources[0]: token (or token_file) is required"]
    config = build_config(
        {
            "cache": {"endpoints": {"tenants": 45}},
            "sources": [{"name": "lab", "type": NAME, "token": "t0ken-value"}],
        }
    )
    assert isinstance(config.sources[0], AcmeSettings)
    assert config.secrets() == ["t0ken-value"]


def test_unregistered_it_is_an_unknown_type() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"sources": [{"name": "lab", "type": NAME, "token": "t"}]})
    assert info.value.problems[0].startswith("sources[0].type: unknown type (one of: datto,")
    with pytest.raises(ConfigError, match="unknown endpoint tenants"):
        build_config(
            {
                "cache": {"endpoints": {"tenants": 45}},
                "sources": [{"name": "d", "type": "datto", "public_key": "p", "private_key": "k"}],
            }
        )
