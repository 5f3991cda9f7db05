"""End to end through real Prometheus and Alertmanager (tests/alertstack.py): single problems,
followed through exporter restarts and vendor changes, and the demo's notifications."""

from __future__ import annotations

import re
import time
from typing import Any

from exporter.simulator.app import Simulator
from exporter.simulator.scenarios import heal
from tests.alertstack import Webhook, settle, stack, wait_for_alerts, webhook
from tests.conftest import wait_for

__all__ = ["stack", "webhook"]  # fixtures

# The first word of the last sentence of every description: what to do.
ACTIONS = re.compile(
    r"(?:^|[.:] )(Check|Open|Ask|Tell|Restore|List|Add|Confirm|Reactivate|Lower|Look|Fix|"
    r"Wait)\b[^.]*\.$"
)


def stale_seats(sim: Simulator, index: int = 0) -> tuple[str, str]:
    """One Datto customer's licensed seats stale for three days; its id and name."""
    customer = sim.fleet.customers[index]
    for seat in customer.seats:
        if seat.state == "Active":
            seat.backup_age = 3 * 86400 + 7200
    return str(customer.id), customer.name


def test_one_customers_failure_is_one_notification(
    stack: Any, webhook: tuple[Webhook, str]
) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    heal(sim)
    customer_id, name = stale_seats(sim, 2)
    running = stack(sim)
    running.wait_scraped()
    hook = webhook[0]
    wait_for_alerts(hook, {"SaaSBackupSeatsNotBackedUp72h"})
    settle()
    assert hook.count() == 1, hook.notifications
    (notification,) = hook.notifications
    assert notification["receiver"] == "backup-oncall"
    # The 24 h alert fires in Prometheus too; Alertmanager holds it back, and the 72 h text
    # carries its count.
    assert [a["labels"]["alertname"] for a in notification["alerts"]] == [
        "SaaSBackupSeatsNotBackedUp72h"
    ]
    alert = notification["alerts"][0]
    assert alert["labels"]["customer_id"] == customer_id
    assert "customer_name" not in alert["labels"]
    description = alert["annotations"]["description"]
    assert name in description
    assert "for more than 72 hours (" in description
    assert re.search(r"\(\d+ for more than 24 hours\)", description), description
    in_prometheus = {a["labels"]["alertname"] for a in running.prometheus_alerts()}
    assert "SaaSBackupSeatsNotBackedUp24h" in in_prometheus


def test_restarting_the_exporter_mid_incident_resolves_nothing_and_sends_nothing(
    stack: Any, webhook: tuple[Webhook, str]
) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    heal(sim)
    stale_seats(sim, 2)
    running = stack(sim)
    running.wait_scraped()
    hook = webhook[0]
    wait_for_alerts(hook, {"SaaSBackupSeatsNotBackedUp72h"})
    settle()
    before = hook.count()
    firing = {a["labels"]["alertname"] for a in running.prometheus_alerts()}
    for _ in range(2):
        running.restart_exporter()
        # The new process serves the restored data, `up` included, from its first scrape.
        wait_for(running.exporter.url + "/metrics", 'saas_backup_up{source="datto"} 1.0')
    # Prometheus has scraped the new process, and any change would have been notified.
    running.wait_scraped()
    settle()
    assert hook.count() == before, hook.notifications[before:]
    assert hook.resolved() == []
    assert {a["labels"]["alertname"] for a in running.prometheus_alerts()} == firing


def test_a_disappearing_customer_is_named(stack: Any, webhook: tuple[Webhook, str]) -> None:
    sim = Simulator(customers=6, seats_per_customer=8, seed=2)
    heal(sim)
    running = stack(sim)
    running.wait_scraped()
    hook = webhook[0]
    # Prometheus has seen every customer before one goes.
    wait_for(running.exporter.url + "/metrics", 'saas_backup_source_customers{source="datto"} 6.0')
    time.sleep(2)
    gone = sim.fleet.customers.pop(3)
    wait_for(running.exporter.url + "/metrics", 'saas_backup_source_customers{source="datto"} 5.0')
    wait_for_alerts(hook, {"SaaSBackupCustomerGone"})
    settle()
    (alert,) = [a for a in hook.firing() if a["labels"]["alertname"] == "SaaSBackupCustomerGone"]
    assert alert["labels"]["customer_id"] == str(gone.id)
    assert alert["labels"]["source"] == "datto"
    assert gone.name in alert["annotations"]["description"]
    assert {a["labels"]["alertname"] for a in hook.firing()} == {"SaaSBackupCustomerGone"}


def test_the_demo_is_told_in_few_notifications_that_say_what_to_do(
    stack: Any, webhook: tuple[Webhook, str]
) -> None:
    """`make demo`'s fleet, which once made 15 notifications and 6 pages."""
    sim = Simulator(customers=12, seats_per_customer=25, seed=1, shape="live")
    running = stack(sim, scrape_interval="2s")
    running.wait_scraped(timeout=60)
    hook = webhook[0]
    wait_for_alerts(hook, {"SaaSBackupServicesNotBackedUp"}, timeout=90)
    settle()
    settle()
    pages = hook.count("backup-oncall")
    for alert in hook.firing():
        description = alert["annotations"]["description"]
        assert "<error" not in description, description
        assert ACTIONS.search(description), f"says nothing to do: {description}"
        assert alert["annotations"]["runbook_url"].endswith(alert["labels"]["alertname"].lower())
    # Each notification is one problem at one customer (or one source).
    assert hook.count() < 15, hook.notifications
    assert pages < 6, hook.notifications
