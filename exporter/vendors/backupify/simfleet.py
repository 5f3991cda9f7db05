"""The simulated Backupify v1 fleet: instances whose backups start and finish as time passes,
their exports, and how each is written in the spec shape or the swagger (live) shape.

Which shape an instance answers in follows the world: ``spec`` all spec, ``live`` all live,
``mixed`` every third instance (positions 1, 4, 7, …) live, as a fleet part-way through a
migration looks. The fleet itself (times, troubles) is the same in every shape; only a live
instance's schedule follows its ``backup_frequency`` (spec-shaped ones back up every 6 hours,
their assumed ``4x_daily``).
"""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from exporter.simulator.fleet import DAY, HOUR
from exporter.simulator.world import World

PER_PAGE: Final = 20
PERIOD: Final = 6 * HOUR
KEPT: Final = 45
VENDOR_ID: Final = 42
DEFINITIONS: Final = ((1, "Google Apps"), (2, "Office 365"))
# Another vendor's definition: listed by /v1/backup_definitions, its instances out of our reach.
FOREIGN_VENDOR_ID: Final = 77
FOREIGN_DEFINITION: Final = (901, "Acme CRM Backup")
PERIODS: Final = {"daily": DAY, "weekly": 7 * DAY}
# The live API's times carry offsets and sometimes milliseconds.
ZONES: Final = (timezone(timedelta(hours=-4)), timezone(timedelta(hours=2)))
# A spec-shaped instance's frequency as the simulator always served it (not a swagger word).
SPEC_FREQUENCY: Final = "4x_daily"


@dataclass
class SimExport:
    id: int
    started: float
    duration: float
    status: str  # the final status, in the swagger's words
    records: int
    failed_records: int = 0


@dataclass
class Instance:
    id: int
    index: int
    customer_id: int
    customer_name: str
    name: str
    definition_id: int
    status: str
    phase: float
    duration: float
    # A backup that started here (Unix time) and never finishes.
    stuck_since: float | None = None
    newest_status: str | None = None
    legacy_fields: bool = False
    # Answers in the swagger's shape rather than the spec's.
    live: bool = False
    frequency: str = SPEC_FREQUENCY
    # No scheduled backup has started since (a silent failure; heal() clears it).
    stale_since: float | None = None
    # Backups were switched off here ("off" frequency; nothing to heal).
    off_since: float | None = None
    exports: list[SimExport] = field(default_factory=list)
    # A recent failed export (heal() removes it).
    failed_export: SimExport | None = None

    @property
    def period(self) -> float:
        return PERIODS.get(self.frequency, DAY) if self.live else PERIOD

    @property
    def halted_since(self) -> float | None:
        times = [t for t in (self.stale_since, self.off_since) if t is not None]
        return min(times, default=None)

    def all_exports(self) -> list[SimExport]:
        extra = [self.failed_export] if self.failed_export is not None else []
        return sorted([*self.exports, *extra], key=lambda e: e.id)


@dataclass
class BackupifyFleet:
    instances: list[Instance]
    # The token in every export's exported_data_url: customer data, a secret (tests plant a
    # canary here).
    download_token: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    def instance(self, instance_id: str) -> Instance | None:
        return next((i for i in self.instances if str(i.id) == instance_id), None)

    def customers(self) -> list[tuple[int, str]]:
        seen: dict[int, str] = {}
        for i in self.instances:
            seen.setdefault(i.customer_id, i.customer_name)
        return sorted(seen.items())


def is_live(world: World, index: int) -> bool:
    return world.shape == "live" or (world.shape == "mixed" and index % 3 == 1)


def _frequency(index: int) -> str:
    if index == 4:
        return "off"
    return "weekly" if index % 4 == 1 else "daily"


def _exports(inst: Instance, start: float) -> list[SimExport]:
    base = 50_000 + inst.index * 100
    if inst.index == 0:
        # A long history, one export a day for 45 days: more pages than a week's window needs.
        # None starts within 4 hours of a 7-day window's edge, so tests do not flap.
        return [
            SimExport(
                base + n, start - (44 - n) * DAY - 4 * HOUR, 0.4 * HOUR, "successful", 900 + n
            )
            for n in range(45)
        ]
    exports = [
        SimExport(base, start - 12 * DAY, 0.5 * HOUR, "successful", 1500),
        SimExport(base + 1, start - 2 * DAY - inst.index * HOUR, 0.3 * HOUR, "successful", 820),
    ]
    if inst.index == 2:
        exports.append(SimExport(base + 2, start - 5 * DAY, 0.2 * HOUR, "canceled", 40))
    if inst.index == 3:
        # Started just before the world did and still running for a while.
        exports.append(SimExport(base + 3, start - 600, HOUR, "successful", 2400))
    return exports


def generate(world: World) -> BackupifyFleet:
    """Instances for half as many customers as the shared fleet has (at least five, so that
    every kind of trouble has one), taken from the back of the fleet."""
    rng = random.Random(world.seed * 7919 + 2)
    count = max(5, world.customers // 2)
    instances = []
    for index, name in enumerate(
        world.customer_names(count, offset=len(world.fleet.customers) - count)
    ):
        definition_id, product = DEFINITIONS[index % 2]
        live = is_live(world, index)
        inst = Instance(
            id=7001 + index,
            index=index,
            customer_id=3001 + index,
            customer_name=name,
            name=f"{name} ({product})",
            definition_id=definition_id,
            status="active",
            phase=rng.uniform(0, PERIOD),
            duration=rng.uniform(0.3 * HOUR, 1.2 * HOUR),
            legacy_fields=index % 2 == 1,
            live=live,
            frequency=_frequency(index) if live else SPEC_FREQUENCY,
        )
        if live and inst.frequency == "off":
            inst.off_since = world.start - 30 * DAY
        inst.exports = _exports(inst, world.start)
        instances.append(inst)
    instances[0].stuck_since = world.start - 20 * HOUR
    instances[1].newest_status = "verifying"  # a status nobody documented
    instances[1].failed_export = SimExport(
        50_190, world.start - 3 * HOUR, 0.4 * HOUR, "failed", 1200, 37
    )
    instances[2].newest_status = "failed"
    # Daily, yet nothing has started for three days: more than twice its interval.
    instances[3].stale_since = world.start - 3 * DAY
    return BackupifyFleet(instances)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def live_iso(ts: float, index: int) -> str:
    """As the live API writes times: an offset, and milliseconds on every other instance."""
    when = datetime.fromtimestamp(ts, ZONES[index % 2])
    return when.isoformat(timespec="milliseconds" if index % 2 == 0 else "seconds")


@dataclass(frozen=True)
class SimBackup:
    id: int
    started: float
    ended: float | None
    status: str  # the swagger's words, or an undocumented one planted on purpose
    warnings: bool = False


def events(inst: Instance, now: float) -> list[SimBackup]:
    """The instance's backups in ascending id order, as they stand at ``now``."""
    period = inst.period
    latest = math.floor((now - inst.phase) / period)
    halted = inst.halted_since
    out: list[SimBackup] = []
    last_k = latest - KEPT
    for k in range(latest - KEPT + 1, latest + 1):
        started = inst.phase + k * period
        if inst.stuck_since is not None and started >= inst.stuck_since:
            break
        if halted is not None and started >= halted:
            break
        last_k = k
        ended = started + inst.duration
        backup_id = k * 100 + inst.index
        if ended > now:
            # The first minutes of a backup are spent in the queue.
            status = "queued" if now - started < 300 else "in_progress"
            out.append(SimBackup(backup_id, started, None, status))
        else:
            out.append(SimBackup(backup_id, started, ended, "successful", k % 9 == 0))
    if inst.newest_status is not None:
        done = [n for n, b in enumerate(out) if b.ended is not None]
        if done:
            b = out[done[-1]]
            out[done[-1]] = SimBackup(b.id, b.started, b.ended, inst.newest_status)
    if inst.stuck_since is not None:
        out.append(
            SimBackup((last_k + 1) * 100 + inst.index, inst.stuck_since, None, "in_progress")
        )
    return out


def _spec_backup(inst: Instance, backup: SimBackup) -> dict[str, Any]:
    started_key, ended_key, status_key = (
        ("created_at", "completed_at", "state")
        if inst.legacy_fields
        else ("started_at", "finished_at", "status")
    )
    if backup.ended is None:
        status = "running"
    elif backup.status == "successful":
        status = "completed_with_errors" if backup.warnings else "completed"
    else:
        status = backup.status
    return {
        "id": backup.id,
        "backup_instance_id": inst.id,
        status_key: status,
        started_key: iso(backup.started),
        ended_key: None if backup.ended is None else iso(backup.ended),
    }


def _live_backup(inst: Instance, backup: SimBackup) -> dict[str, Any]:
    failures: list[str] = []
    if backup.status == "failed":
        failures = ["Authorization revoked by the customer's administrator"]
    elif backup.warnings:
        failures = ["3 items skipped: file too large"]
    return {
        "id": backup.id,
        "backup_instance_id": inst.id,
        "started_at": live_iso(backup.started, inst.index),
        "ended_at": None if backup.ended is None else live_iso(backup.ended, inst.index),
        "status": backup.status,
        "failures": failures,
    }


def backup(inst: Instance, item: SimBackup) -> dict[str, Any]:
    return _live_backup(inst, item) if inst.live else _spec_backup(inst, item)


def backups(inst: Instance, now: float) -> list[dict[str, Any]]:
    """The instance's backups in its shape, ascending by id, as they stand at ``now``."""
    return [backup(inst, b) for b in events(inst, now)]


def running(inst: Instance, now: float) -> SimBackup | None:
    active = [b for b in events(inst, now) if b.ended is None]
    return active[-1] if active else None


def instance(inst: Instance, now: float) -> dict[str, Any]:
    if not inst.live:
        return {
            "id": inst.id,
            "customer_id": inst.customer_id,
            "customer_name": inst.customer_name,
            "name": inst.name,
            "backup_definition_id": inst.definition_id,
            ("state" if inst.legacy_fields else "status"): inst.status,
            "backup_frequency": inst.frequency,
        }
    history = events(inst, now)
    newest = history[-1] if history else None
    # The swagger's instance enum writes "in progress" with a space, unlike its backups.
    state = None if newest is None else newest.status.replace("in_progress", "in progress")
    success = [b for b in history if b.status == "successful" and b.ended is not None]
    next_run = None
    if inst.frequency != "off":
        k = math.floor((now - inst.phase) / inst.period) + 1
        next_run = live_iso(inst.phase + k * inst.period, inst.index)
    return {
        "id": inst.id,
        "backup_definition_id": inst.definition_id,
        "customer_id": inst.customer_id,
        "backup_frequency": inst.frequency,
        "last_backup_state": state,
        "last_successful_backup": (
            live_iso(success[-1].ended, inst.index)
            if success and success[-1].ended is not None
            else None
        ),
        "next_scheduled_backup": next_run,
    }


def last_success(inst: Instance, now: float) -> float | None:
    """What a live instance reports as its last successful backup (for tests)."""
    done = [b.ended for b in events(inst, now) if b.status == "successful" and b.ended]
    return done[-1] if done else None


def export(inst: Instance, item: SimExport, now: float, token: str) -> dict[str, Any]:
    def when(ts: float) -> str:
        return live_iso(ts, inst.index) if inst.live else iso(ts)

    ended: float | None = item.started + item.duration
    status, processed = item.status, item.records
    if now < item.started + 60:
        ended, status, processed = None, "queued", 0
    elif ended is not None and now < ended:
        done = (now - item.started) / item.duration
        ended, status, processed = None, "in_progress", int(item.records * done)
    finished = ended is not None
    return {
        "id": item.id,
        "backup_instance_id": inst.id,
        "started_at": when(item.started),
        "ended_at": when(ended) if ended is not None else None,
        "status": status,
        "records_processed": processed,
        "records_failed": item.failed_records if finished else 0,
        "failures": [f"{item.failed_records} records could not be read"]
        if finished and item.failed_records
        else [],
        "export_formats": "json,blobs",
        "content_types": "",
        # A bearer link to the customer's data: the exporter must never show it.
        "exported_data_url": (
            f"https://exports.backupify.example/v1/download/{item.id}?access_token={token}"
            if finished
            else None
        ),
        "exported_data_url_expiration": when(ended + 7 * DAY) if ended is not None else None,
    }
