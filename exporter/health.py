"""Backup health as a person reads it: each customer's problems, judged by the numbers the alert
rules use (``exporter.thresholds``) so that the status page and the alerts agree, and the
fleet's running backups and recent restores. Pure functions of source states and the time;
``exporter.statuspage`` renders them.

Every name here (customer, seat, application, job) is the vendor's text, unescaped.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from exporter import thresholds as limits
from exporter.model import (
    ApplicationBackup,
    BackupInstance,
    BackupRun,
    RestoreJob,
    Seat,
    Snapshot,
)
from exporter.refresh import SourceState

HOUR: Final = 3600.0
NEVER: Final = math.inf
# Customer statuses under which the vendor backs nothing up (as SaaSBackupCustomerNotActive).
NOT_ACTIVE: Final = frozenset({"inactive", "suspended", "cancelled", "expired"})
UNFINISHED: Final = frozenset({"running", "pending"})
KINDS: Final = ("customer", "seat", "application", "backup", "restore")


class Level(enum.IntEnum):
    """How bad a problem is; a customer is as bad as its worst problem."""

    OK = 0
    UNPROTECTED = 1
    STALE = 2
    UNREADABLE = 3
    FAILED = 4

    @property
    def word(self) -> str:
        return self.name.lower()


class Problem(NamedTuple):
    # A tuple, and its words written only when shown: a fleet's stale seats make many.
    level: Level
    kind: str  # one of KINDS
    name: str
    # What is wrong; with ``timed``, a format with one field for the age.
    phrase: str
    # Seconds since the time it dates from: NEVER for never backed up, 0 where none applies.
    age: float = 0.0
    # Past the critical threshold of its kind (a seat or application for 72 hours).
    critical: bool = False
    timed: bool = False

    @property
    def what(self) -> str:
        return self.phrase.format(duration(self.age)) if self.timed else self.phrase

    def weight(self) -> tuple[Level, bool, float]:
        return self.level, self.critical, self.age


@dataclass(frozen=True, slots=True)
class CustomerHealth:
    source: str
    customer_id: str
    name: str
    # Worst first; one per seat, application, backup instance or restore job at most.
    problems: tuple[Problem, ...]

    @property
    def level(self) -> Level:
        return self.problems[0].level if self.problems else Level.OK

    @property
    def worst(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def counts(self, level: Level) -> list[tuple[str, int]]:
        """How many of each kind are at this level, in the order of KINDS."""
        found = Counter(p.kind for p in self.problems if p.level == level)
        return [(kind, found[kind]) for kind in KINDS if found[kind]]

    def order(self) -> tuple[object, ...]:
        by_level = Counter(p.level for p in self.problems)
        worst = self.worst.age if self.worst else 0.0
        return (
            -self.level,
            -sum(p.critical for p in self.problems),
            *(-by_level[level] for level in sorted(Level, reverse=True)),
            -worst,
            self.name.casefold(),
            self.source,
            self.customer_id,
        )


@dataclass(frozen=True, slots=True)
class Activity:
    """A running backup or a restore job, with the customer it belongs to."""

    source: str
    customer_id: str
    customer: str
    what: str
    status: str
    started: float | None
    ended: float | None
    # OK, STALE (running too long, stuck) or FAILED.
    level: Level
    detail: str = ""


def duration(seconds: float) -> str:
    """A short, rounded span: ``45 s``, ``12 min``, ``5 h``, ``3 d 2 h``, ``12 d``."""
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * HOUR:
        return f"{round(seconds / HOUR)} h"
    days, hours = divmod(round(seconds / HOUR), 24)
    return f"{days} d {hours} h" if hours and days < 10 else f"{days + (hours >= 12)} d"


def _worst(found: Iterable[Problem]) -> Problem | None:
    return max(found, key=Problem.weight, default=None)


def _seat(seat: Seat, now: float) -> Problem | None:
    name = seat.name or seat.id
    if seat.license_state == "unlicensed":
        return Problem(Level.UNPROTECTED, "seat", name, "not licensed, so not backed up")
    if seat.license_state != "licensed":
        return None
    if seat.last_backup is None:
        if not seat.reports_backup_time:
            return None  # the vendor gives no per-seat time: unknown, not stale
        return Problem(Level.STALE, "seat", name, "never backed up", NEVER)
    age = now - seat.last_backup
    if age <= limits.SEAT_STALE_HOURS * HOUR:
        return None
    critical = age > limits.SEAT_CRITICAL_HOURS * HOUR
    return Problem(Level.STALE, "seat", name, "last backed up {} ago", age, critical, timed=True)


def _application(app: ApplicationBackup, now: float) -> Problem | None:
    name = app.application
    found = []
    if app.status == "failed":
        age = 0.0 if app.last_backup is None else now - app.last_backup
        found.append(Problem(Level.FAILED, "application", name, "newest backup failed", age))
    # Backups switched off at the vendor are not expected to run, as in the rules' NOT_PAUSED.
    if app.enabled is not False:
        if app.last_backup is not None:
            age = now - app.last_backup
            if age > limits.APPLICATION_STALE_HOURS * HOUR:
                what = "no backup for {}"
                found.append(Problem(Level.STALE, "application", name, what, age, timed=True))
        if app.last_fully_protected is not None:
            age = now - app.last_fully_protected
            if age > limits.NOT_FULLY_PROTECTED_HOURS * HOUR:
                what = "not fully protected for {}"
                found.append(Problem(Level.STALE, "application", name, what, age, True, True))
        if app.services_active is not None and app.services_backed_up is not None:
            missing = app.services_active - app.services_backed_up
            if missing > 0:
                what = f"{missing} of {app.services_active} services not backed up in a day"
                found.append(Problem(Level.STALE, "application", name, what))
        if app.services_uningested:
            what = f"{app.services_uningested} services found but not taken into backup"
            found.append(Problem(Level.UNPROTECTED, "application", name, what))
    return _worst(found)


def _backups(snap: Snapshot, now: float) -> Iterator[Problem]:
    """One problem per backup instance at most: its newest backup failed, it has not succeeded
    for its intervals, or a backup of it runs too long."""
    names = {i.instance_id: i.name or i.instance_id for i in snap.instances}
    found: dict[str, list[Problem]] = {}

    def add(instance_id: str, level: Level, phrase: str, age: float) -> None:
        name = names.get(instance_id, instance_id)
        problem = Problem(level, "backup", name, phrase, age, timed=True)
        found.setdefault(instance_id, []).append(problem)

    for run in snap.finished_backups:
        if run.status == "failed":
            age = 0.0 if run.ended is None else now - run.ended
            add(run.instance_id, Level.FAILED, "newest backup failed {} ago", age)
    for inst in snap.instances:
        if _instance_stale(inst, now) and inst.last_success is not None:
            age = now - inst.last_success
            add(inst.instance_id, Level.STALE, "last succeeded {} ago", age)
    for run in snap.active_backups:
        if run.started is not None and now - run.started > limits.BACKUP_TOO_LONG_HOURS * HOUR:
            age = now - run.started
            add(run.instance_id, Level.STALE, "running for {}", age)
    for problems in found.values():
        worst = _worst(problems)
        if worst is not None:
            yield worst


def _instance_stale(inst: BackupInstance, now: float) -> bool:
    if inst.backup_interval is None or inst.last_success is None:
        return False
    return now - inst.last_success > limits.INSTANCE_STALE_INTERVALS * inst.backup_interval


def _restore(job: RestoreJob, now: float) -> Level:
    if job.status == "failed" and job.ended is not None:
        recent = now - job.ended < limits.RESTORE_FAILED_WITHIN_HOURS * HOUR
        return Level.FAILED if recent else Level.OK
    if job.status == "running" and job.started is not None:
        stuck = now - job.started > limits.RESTORE_STUCK_HOURS * HOUR
        return Level.STALE if stuck else Level.OK
    return Level.OK


def _restores(snap: Snapshot, now: float) -> Iterator[Problem]:
    for job in snap.restore_jobs:
        level = _restore(job, now)
        name = f"{job.kind} {job.job_id}"
        if level == Level.FAILED and job.ended is not None:
            age = now - job.ended
            yield Problem(level, "restore", name, "failed {} ago", age, timed=True)
        elif level == Level.STALE and job.started is not None:
            age = now - job.started
            yield Problem(level, "restore", name, "running for {}", age, timed=True)


def customer_name(snap: Snapshot, customer_id: str) -> str:
    found = next((c for c in snap.customers if c.id == customer_id), None)
    if found is None and snap.customers:
        found = snap.customers[0]
    return found.name if found is not None and found.name else customer_id


def customers(states: Sequence[SourceState], now: float) -> list[CustomerHealth]:
    """Every customer of every source, the worst first."""
    out = []
    for state in states:
        for part in state.parts.values():
            snap = part.records
            name = customer_name(snap, part.customer_id)
            found: list[Problem] = []
            if part.error:
                what = f"could not be read: {part.error}"
                found.append(Problem(Level.UNREADABLE, "customer", name, what))
            found += [
                Problem(Level.UNPROTECTED, "customer", name, f"{c.status} at the vendor")
                for c in snap.customers
                if c.status in NOT_ACTIVE
            ]
            found += [p for seat in snap.seats if (p := _seat(seat, now))]
            found += [p for app in snap.applications if (p := _application(app, now))]
            found += _backups(snap, now)
            found += _restores(snap, now)
            found.sort(key=Problem.weight, reverse=True)
            out.append(CustomerHealth(state.name, part.customer_id, name, tuple(found)))
    out.sort(key=CustomerHealth.order)
    return out


def running(states: Sequence[SourceState], now: float) -> list[Activity]:
    """Backups running now, those running too long first, then the longest running."""
    out = []
    for state in states:
        for part in state.parts.values():
            snap = part.records
            name = customer_name(snap, part.customer_id)
            instances = {i.instance_id: i.name or i.instance_id for i in snap.instances}
            for run in snap.active_backups:
                out.append(_run(state.name, name, run, instances, now))
            for app in snap.applications:
                if app.status == "running" or app.progress is not None:
                    out.append(
                        Activity(
                            state.name,
                            app.customer_id,
                            name,
                            app.application,
                            app.status,
                            None,
                            None,
                            Level.OK,
                            app.progress or "",
                        )
                    )
    out.sort(key=lambda a: (-a.level, math.inf if a.started is None else a.started, a.customer))
    return out


def _run(
    source: str, customer: str, run: BackupRun, instances: dict[str, str], now: float
) -> Activity:
    too_long = run.started is not None and now - run.started > limits.BACKUP_TOO_LONG_HOURS * HOUR
    return Activity(
        source,
        run.customer_id,
        customer,
        instances.get(run.instance_id, run.instance_id),
        run.status,
        run.started,
        run.ended,
        Level.STALE if too_long else Level.OK,
    )


def restores(states: Sequence[SourceState], now: float) -> list[Activity]:
    """Restore jobs that have not finished, and those that finished within the window the alerts
    count failures in: failed first, then stuck, then the newest."""
    window = limits.RESTORE_FAILED_WITHIN_HOURS * HOUR
    out = []
    for state in states:
        for part in state.parts.values():
            name = customer_name(part.records, part.customer_id)
            for job in part.records.restore_jobs:
                recent = job.ended is not None and now - job.ended < window
                if not (recent or job.status in UNFINISHED):
                    continue
                detail = ""
                if job.records_processed is not None:
                    detail = f"{job.records_processed} records"
                    if job.records_failed:
                        detail += f", {job.records_failed} failed"
                out.append(
                    Activity(
                        state.name,
                        job.customer_id,
                        name,
                        f"{job.kind} {job.job_id}",
                        job.status,
                        job.started,
                        job.ended,
                        _restore(job, now),
                        detail,
                    )
                )
    out.sort(key=lambda a: (-a.level, -max(a.ended or 0.0, a.started or 0.0), a.customer))
    return out
