"""Named states of the simulated fleets, for end-to-end tests of the alerts and for trying them.

- ``demo``: the generated fleets as they are, with a bit of everything.
- ``healthy``: nothing an operator should be told about.
- ``incident``: healthy, except one Datto customer's seats stale for 3 days, one failed restore
  and one backup running for 20 hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from exporter.simulator.fleet import DAY, HOUR

if TYPE_CHECKING:
    from exporter.simulator.app import Simulator

SCENARIOS: Final = ("demo", "healthy", "incident")


@dataclass(frozen=True)
class Incident:
    stale_customer: str  # Datto customer name
    stale_customer_id: str
    failed_restore_job: str
    failed_restore_customer: str  # CloudAlly customer name
    long_backup_customer: str  # Backupify customer name
    long_backup_instance: str


def heal(sim: Simulator) -> None:
    for index, customer in enumerate(sim.fleet.customers):
        customer.status = "active"
        for number, seat in enumerate(customer.seats):
            if seat.state == "Active":
                seat.backup_age = HOUR * (1 + (index + number) % 8)
        for app in customer.applications:
            for day, entry in enumerate(app.history):
                entry.status = "Success"
                entry.start_age = day * DAY + 2 * HOUR
                entry.end_age = day * DAY + 1.5 * HOUR
    for instance in sim.backupify.instances:
        instance.stuck_since = None
        instance.newest_status = None
    for task in sim.cloudally.tasks:
        task.status = "success"
        task.backup_age = 3 * HOUR
    for job in sim.cloudally.jobs:
        job.outcome = "success"
        if math.isinf(job.runs_for):
            job.runs_for = 600


def make_incident(sim: Simulator) -> Incident:
    heal(sim)
    customer = sim.fleet.customers[0]
    for seat in customer.seats:
        if seat.state == "Active":
            seat.backup_age = 3 * DAY + 2 * HOUR
    job = sim.cloudally.jobs[2]
    job.outcome, job.created, job.runs_for = "failed", sim.start - 3 * HOUR, 1200
    instance = sim.backupify.instances[0]
    instance.stuck_since = sim.start - 20 * HOUR
    cloudally_name = next(
        t.customer_name for t in sim.cloudally.tasks if t.customer_id == job.customer_id
    )
    return Incident(
        stale_customer=customer.name,
        stale_customer_id=str(customer.id),
        failed_restore_job=job.id,
        failed_restore_customer=cloudally_name,
        long_backup_customer=instance.customer_name,
        long_backup_instance=str(instance.id),
    )


def apply(sim: Simulator, scenario: str) -> None:
    if scenario == "healthy":
        heal(sim)
    elif scenario == "incident":
        make_incident(sim)
    elif scenario != "demo":
        raise ValueError(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
