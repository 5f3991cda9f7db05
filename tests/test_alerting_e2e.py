"""End to end through real Prometheus and Alertmanager (tests/alertstack.py): what a person is
told about a healthy fleet, an incident, a source outage and a fleet of 10,000 stale seats.
tests/test_alerting_e2e_incidents.py follows single problems through restarts.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from exporter.simulator.app import Simulator
from exporter.simulator.faults import parse_fault
from exporter.simulator.scenarios import heal, make_incident
from tests.alertstack import Webhook, settle, stack, wait_for_alerts, webhook
from tests.conftest import wait_for

__all__ = ["stack", "webhook"]  # fixtures


def test_healthy_fleet_raises_nothing(stack: Any, webhook: tuple[Webhook, str]) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    heal(sim)
    running = stack(sim)
    running.wait_scraped()
    settle()
    hook = webhook[0]
    assert hook.notifications == []
    assert [a["labels"]["alertname"] for a in running.prometheus_alerts()] == []


def test_incident_raises_exactly_the_expected_alerts(
    stack: Any, webhook: tuple[Webhook, str]
) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    incident = make_incident(sim)
    running = stack(sim)
    running.wait_scraped()
    hook = webhook[0]
    expected = {
        "SaaSBackupSeatsNotBackedUp72h",
        "SaaSBackupRestoreFailed",
        "SaaSBackupRunningTooLong",
    }
    wait_for_alerts(hook, expected)
    settle()
    firing = hook.firing()
    assert {a["labels"]["alertname"] for a in firing} == expected, firing
    by_name = {a["labels"]["alertname"]: a for a in firing}
    seats = by_name["SaaSBackupSeatsNotBackedUp72h"]
    stale_seats = incident.of("stale_seats")
    assert seats["labels"]["customer_id"] == stale_seats.customer_id
    assert stale_seats.customer_name in seats["annotations"]["description"]
    failed_restore = incident.of("failed_restore")
    restore_description = by_name["SaaSBackupRestoreFailed"]["annotations"]["description"]
    assert failed_restore.customer_name in restore_description
    assert failed_restore.item_id in restore_description
    assert (
        incident.of("long_backup").customer_name
        in by_name["SaaSBackupRunningTooLong"]["annotations"]["description"]
    )
    # The 24 h alert fires in Prometheus too, and Alertmanager holds it back.
    in_prometheus = {
        a["labels"]["alertname"] for a in running.prometheus_alerts() if a["state"] == "firing"
    }
    assert "SaaSBackupSeatsNotBackedUp24h" in in_prometheus


def test_source_outage_is_one_notification(stack: Any, webhook: tuple[Webhook, str]) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    incident = make_incident(sim)
    running = stack(sim, monitor=False)
    metrics = running.exporter.url + "/metrics"
    # Datto's data is in, with a customer's seats stale for 3 days; then its API fails.
    wait_for(metrics, 'saas_backup_up{source="datto"} 1.0')
    sim.set_faults([parse_fault("500@domains")])
    time.sleep(1.1)
    wait_for(metrics, 'saas_backup_up{source="datto"} 0.0')
    running.monitor()
    running.wait_scraped(up=2)
    hook = webhook[0]
    wait_for_alerts(hook, {"SaaSBackupSourceDown"})
    settle()
    datto = [a for a in hook.firing() if a["labels"].get("source") == "datto"]
    assert [a["labels"]["alertname"] for a in datto] == ["SaaSBackupSourceDown"]
    # One page, and nothing else about that source.
    told = [n for n in hook.notifications if n["groupLabels"].get("source") == "datto"]
    assert [n["receiver"] for n in told] == ["backup-oncall"], told
    # The stale seats still fire in Prometheus, beside up=0: Alertmanager inhibits them.
    in_prometheus = [a for a in running.prometheus_alerts() if a["state"] == "firing"]
    stale = [
        a for a in in_prometheus if a["labels"]["alertname"] == "SaaSBackupSeatsNotBackedUp72h"
    ]
    assert stale
    assert stale[0]["labels"]["customer_id"] == incident.of("stale_seats").customer_id


def test_ten_thousand_stale_seats_are_at_most_a_hundred_notifications(
    stack: Any, webhook: tuple[Webhook, str]
) -> None:
    sim = Simulator(customers=100, seats_per_customer=100, seed=9, shape="spec")
    heal(sim)
    stale = 0
    for customer in sim.fleet.customers:
        # Exactly 100 seats each, all licensed and 4 days stale.
        template = customer.seats[0]
        customer.seats = [
            replace(
                template, remote_id=f"{customer.id}-{n}", state="Active", backup_age=4 * 86400.0
            )
            for n in range(100)
        ]
        stale += len(customer.seats)
    assert stale == 10_000
    # A 10,000-seat scrape takes a while on a busy 2-core machine: give it room, and refresh
    # only once (the simulator shares this process), so that scrapes serve cached bytes.
    running = stack(sim, scrape_interval="5s", ttl=600)
    running.wait_scraped(timeout=90)
    hook = webhook[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and hook.count() < 100:
        time.sleep(0.5)
    settle()
    other = {a["labels"]["alertname"] for a in hook.firing()} - {"SaaSBackupSeatsNotBackedUp72h"}
    assert not other, other
    assert hook.count() <= 100
    customers = {
        a["labels"]["customer_id"]
        for a in hook.firing()
        if a["labels"]["alertname"] == "SaaSBackupSeatsNotBackedUp72h"
    }
    assert len(customers) == 100, "every customer is told about, once"
    counts = {a["annotations"]["description"].split(" ", 1)[0] for a in hook.firing()}
    assert counts == {"100"}


def test_the_live_demo_fleet_raises_the_live_signals(
    stack: Any, webhook: tuple[Webhook, str]
) -> None:
    """`make demo`'s fleet in the vendors' live shapes: Datto services missed in the last day and
    a first backup that never finished, failing Backupify and CloudAlly backups and a stale
    CloudAlly task each reach Alertmanager."""
    sim = Simulator(customers=12, seats_per_customer=25, seed=1, shape="live")
    running = stack(sim, scrape_interval="2s")
    running.wait_scraped(timeout=60)
    hook = webhook[0]
    # With every `for:` shortened, a failed backup is at once a day old: the page for it holds
    # back the ticket (SaaSBackupInstanceBackupFailed).
    live = {
        "SaaSBackupServicesNotBackedUp": {"datto"},
        "SaaSBackupCustomerBackupsFailing": {"backupify", "cloudally"},
        "SaaSBackupApplicationBackupStale": {"cloudally"},
        "SaaSBackupFirstBackupNotFinished": {"datto"},
    }
    wait_for_alerts(hook, set(live), timeout=90)
    for name, sources in live.items():
        alerts = [a for a in hook.firing() if a["labels"]["alertname"] == name]
        assert {a["labels"]["source"] for a in alerts} == sources, (name, alerts)
    names = {a["labels"]["alertname"] for a in hook.firing()}
    assert "SaaSBackupInstanceBackupFailed" not in names
    missed = next(
        a for a in hook.firing() if a["labels"]["alertname"] == "SaaSBackupServicesNotBackedUp"
    )
    customer = sim.fleet.customer(missed["labels"]["customer_id"])
    assert customer is not None
    assert customer.name in missed["annotations"]["description"]
    assert " of " in missed["annotations"]["description"]
    assert "not backed up in the last day" in missed["annotations"]["description"]
