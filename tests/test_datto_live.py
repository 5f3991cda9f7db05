"""Datto's live shape end to end, over real sockets: daily windows become service counts and a
status, never a last-backup time; the last fully protected time (exact or a bucket's bound);
uningested services; storage; billable seats."""

from __future__ import annotations

import time

import httpx

from exporter.app import build_app
from exporter.config import build_config
from exporter.simulator.app import Simulator
from exporter.vendors.datto.simulator import LIVE_APP_TYPES, billable
from tests.conftest import ServerThread, datto_source, series, value

DAY = 86400


def scrape_live(sim: Simulator) -> tuple[str, float, float]:
    with ServerThread(sim.app()) as vendor:
        config = build_config({"cache": {"warm_up": False}, "sources": [datto_source(vendor.url)]})
        with ServerThread(build_app(config)) as exporter:
            before = time.time()
            response = httpx.get(
                exporter.url + "/metrics",
                headers={"X-Prometheus-Scrape-Timeout-Seconds": "20"},
                timeout=30,
            )
            after = time.time()
    assert response.status_code == 200
    return response.text, before, after


def test_live_applications_become_service_counts_and_protection_times() -> None:
    sim = Simulator(customers=6, seats_per_customer=10, seed=11, shape="live")
    body, before, after = scrape_live(sim)
    assert value(body, "saas_backup_up", source="datto") == 1
    assert value(body, "saas_backup_parse_errors_total", source="datto") == 0
    assert series(body, "saas_backup_application_last_backup_timestamp_seconds") == [], (
        "window bounds are never a last-backup time"
    )
    statuses = {
        labels["status"] for labels, _ in series(body, "saas_backup_application_last_backup_status")
    }
    assert statuses <= {"success", "partial", "pending"}
    assert {"success", "partial", "pending"} <= statuses

    missed_somewhere = False
    for customer in sim.fleet.customers:
        cid = str(customer.id)
        for app in customer.applications:
            name = LIVE_APP_TYPES.get(app.app_type, app.app_type)
            labels = {"customer_id": cid, "application": name}
            newest = app.history[0]
            services = {
                state: value(body, "saas_backup_application_services", state=state, **labels)
                for state in ("active", "backed_up", "perfect", "uningested")
            }
            assert services == {
                "active": newest.active,
                "backed_up": newest.with_backup,
                "perfect": newest.perfect,
                "uningested": app.uningested,
            }
            missed_somewhere |= newest.active > newest.with_backup
            protected = value(
                body, "saas_backup_application_last_fully_protected_timestamp_seconds", **labels
            )
            fully = next((h for h in app.history if h.with_backup == h.active), None)
            if fully is None or fully.end_age is None:
                # OVER_10_DAYS_AGO: the bucket's bound, taken at fetch time.
                # The bound's fetch time is rounded up to the hour.
                assert before - 10 * DAY - 1 <= protected <= after - 10 * DAY + 3600
            else:
                assert abs(protected - (before - fully.end_age)) < 5
            assert value(body, "saas_backup_application_used_bytes", **labels) > 0
        assert value(body, "saas_backup_customer_used_bytes", customer_id=cid) > 0
        assert value(body, "saas_backup_seats_billable", customer_id=cid) == sum(
            1 for seat in customer.seats if billable(seat)
        )
    assert missed_somewhere, "the demo fleet has services not backed up in the last day"


def test_the_mixed_fleet_reads_windows_and_backups_side_by_side() -> None:
    sim = Simulator(customers=4, seats_per_customer=6, seed=3, shape="mixed")
    body, _, _ = scrape_live(sim)
    spec_customer, live_customer = (str(c.id) for c in sim.fleet.customers[:2])
    # Spec-shaped history is individual backups: a last-backup time, no protection time.
    assert series(
        body,
        "saas_backup_application_last_backup_timestamp_seconds",
        customer_id=spec_customer,
    )
    assert not series(
        body,
        "saas_backup_application_last_fully_protected_timestamp_seconds",
        customer_id=spec_customer,
    )
    assert not series(
        body, "saas_backup_application_last_backup_timestamp_seconds", customer_id=live_customer
    )
    assert series(
        body,
        "saas_backup_application_last_fully_protected_timestamp_seconds",
        customer_id=live_customer,
    )
