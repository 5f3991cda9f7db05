"""Each customer's problems in PromQL, judged as the exporter's status page judges them
(exporter/health.py) with the alert rules' numbers: one series per seat, application, backup
instance, restore job or customer with a problem, for the customer detail's problem list, and
from them each customer's worst state, by which the fleet sorts.

Levels, worst last: 1 unprotected (seats not licensed, services not taken into backup, a
customer not active at the vendor), 2 stale (seats, applications and backup instances not
backed up in time, services missed in the last daily window, backups or restores running too
long), 3 unreadable, 4 failed (an application's or backup instance's newest backup, a restore in
the last day). 0 is a customer without problems.

A problem's series carries `kind`, `problem`, `item` (the seat, application, backup or job by
name) and `item_id` (its id where the name may not be unique), and its value is its age in
seconds or its count where it has one (Problem.measure), else meaningless.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from alerts.thresholds import (
    APPLICATION_STALE_HOURS,
    BACKUP_TOO_LONG_HOURS,
    INSTANCE_STALE_INTERVALS,
    NOT_FULLY_PROTECTED_HOURS,
    RESTORE_FAILED_WITHIN_HOURS,
    RESTORE_STUCK_HOURS,
    SEAT_STALE_HOURS,
)
from dashboards.queries import (
    APPLICATION_KEY,
    CUSTOMER_KEY,
    FAILED,
    INSTANCE_KEY,
    JOB_KEY,
    LICENSED,
    NOT_FULLY_PROTECTED,
    SEAT_KEY,
    STALE,
    age,
    not_backed_up,
    paused,
    per,
    seat_age,
    seat_counts,
    seconds,
    sel,
    services,
    tag,
)

OK: Final = 0
UNPROTECTED: Final = 1
STALE_LEVEL: Final = 2
UNREADABLE: Final = 3
FAILED_LEVEL: Final = 4
# The words for each level, as the status page says them.
LEVELS: Final = {
    OK: "ok",
    UNPROTECTED: "unprotected",
    STALE_LEVEL: "stale",
    UNREADABLE: "unreadable",
    FAILED_LEVEL: "failed",
}
# Customers needing attention, as the status page's verdict counts them.
ATTENTION: Final = STALE_LEVEL

PROBLEM_KEY: Final = f"{CUSTOMER_KEY}, kind, problem, item, item_id"
# As SaaSBackupCustomerNotActive.
NOT_ACTIVE: Final = 'status=~"inactive|suspended|cancelled|expired"'
UNLICENSED: Final = 'license_state="unlicensed"'
NOT_FAILED: Final = 'status!="failed"'

Matchers = Sequence[str]


def _named(expr: str, key: str, info: str, name: str) -> str:
    """`expr` with the `name` label joined from an info metric; without, where it has none."""
    return (
        f"(\n  ({expr})\n  * on ({key}) group_left ({name})\n"
        f"  topk by ({key}) (1, {info})\n  or on ({key})\n  ({expr})\n)"
    )


def _item(expr: str, item: str, *, name: str = "", item_id: str = "") -> str:
    """The `item` label from the `item` label (or from `name` where set), `item_id` from id."""
    out = f'label_replace({expr}, "item", "$1", "{item}", "(.*)")'
    if name:
        out = f'label_replace({out}, "item", "$1", "{name}", "(.+)")'
    if item_id:
        out = f'label_replace({out}, "item_id", "$1", "{item_id}", "(.*)")'
    return out


def _seat_name(expr: str, m: Matchers) -> str:
    info = f"saas_backup_seat_info{sel(*m)}"
    named = _named(expr, SEAT_KEY, info, "seat_name")
    return _item(named, "seat_id", name="seat_name", item_id="seat_id")


def _instance_name(expr: str, m: Matchers) -> str:
    info = f"saas_backup_backup_instance_info{sel(*m)}"
    named = _named(expr, INSTANCE_KEY, info, "instance_name")
    return _item(named, "instance_id", name="instance_name", item_id="instance_id")


def _application(expr: str, _: Matchers) -> str:
    return _item(expr, "application")


def _seat_type(expr: str, _: Matchers) -> str:
    return _item(expr, "seat_type")


def _restore_job(expr: str, _: Matchers) -> str:
    joined = f'label_join({expr}, "restore", " ", "type", "job_id")'
    return _item(joined, "restore", item_id="job_id")


def _unnamed(expr: str, _: Matchers) -> str:
    return expr


@dataclass(frozen=True)
class Problem:
    level: int
    kind: str  # customer, seat, application, backup, restore: the status page's kinds
    what: str  # the problem's words; "$1" takes the value of the label `what_from`
    build: Callable[[Matchers], str]  # present only where the problem is; value as `measure`
    name: Callable[[str, Matchers], str]  # the `item` (and `item_id`) labels
    measure: str = ""  # "age" (seconds) or "count"; else the value is meaningless
    what_from: str = ""

    def series(self, m: Matchers, *, named: bool = True) -> str:
        """One series per item with this problem, labelled as the module says."""
        expr = self.build(m)
        if named:
            expr = self.name(expr, m)
        if self.what_from:
            expr = f'label_replace({expr}, "problem", "{self.what}", "{self.what_from}", "(.*)")'
        else:
            expr = tag(expr, "problem", self.what)
        return per(PROBLEM_KEY, tag(expr, "kind", self.kind))


def _failed_applications(m: Matchers) -> str:
    return per(APPLICATION_KEY, f"saas_backup_application_last_backup_status{sel(*m, FAILED)}")


def _application_age(m: Matchers) -> str:
    return age(
        per(APPLICATION_KEY, f"saas_backup_application_last_backup_timestamp_seconds{sel(*m)}")
    )


def _fully_protected_age(m: Matchers) -> str:
    metric = "saas_backup_application_last_fully_protected_timestamp_seconds"
    return age(per(APPLICATION_KEY, f"{metric}{sel(*m)}"))


def _instance_failed_age(m: Matchers) -> str:
    return age(per(INSTANCE_KEY, f"saas_backup_last_backup_end_timestamp_seconds{sel(*m, FAILED)}"))


def _instance_success_age(m: Matchers) -> str:
    return age(per(INSTANCE_KEY, f"saas_backup_instance_last_success_timestamp_seconds{sel(*m)}"))


def _restore_age(metric: str, status: str, m: Matchers) -> str:
    selector = sel(*m, f'status="{status}"')
    return age(per(JOB_KEY, f"saas_backup_restore_job_{metric}_timestamp_seconds{selector}"))


def _not_paused(expr: str, m: Matchers) -> str:
    return f"(\n  {expr}\n  unless on ({APPLICATION_KEY}) {paused(*m)}\n)"


PROBLEMS: Final = (
    Problem(
        FAILED_LEVEL,
        "application",
        "newest backup failed",
        _failed_applications,
        _application,
    ),
    Problem(
        FAILED_LEVEL,
        "backup",
        "newest backup failed",
        _instance_failed_age,
        _instance_name,
        "age",
    ),
    Problem(
        FAILED_LEVEL,
        "restore",
        f"failed in the last {RESTORE_FAILED_WITHIN_HOURS} h",
        lambda m: f"{_restore_age('end', 'failed', m)} < {seconds(RESTORE_FAILED_WITHIN_HOURS)}",
        _restore_job,
        "age",
    ),
    Problem(
        UNREADABLE,
        "customer",
        "could not be read",
        lambda m: f"{per(CUSTOMER_KEY, f'saas_backup_customer_up{sel(*m)}')} == 0",
        _unnamed,
    ),
    Problem(
        STALE_LEVEL,
        "seat",
        f"not backed up for {SEAT_STALE_HOURS} h",
        lambda m: f"{seat_age(*m, LICENSED)} > {STALE}",
        _seat_name,
        "age",
    ),
    Problem(
        STALE_LEVEL,
        "seat",
        "never backed up",
        lambda m: (
            "sum by (source, customer_id, seat_type) "
            f"({seat_counts('saas_backup_seats_never_backed_up', *m, LICENSED)}) > 0"
        ),
        _seat_type,
        "count",
    ),
    Problem(
        STALE_LEVEL,
        "application",
        f"no finished backup for {APPLICATION_STALE_HOURS} h",
        lambda m: _not_paused(f"{_application_age(m)} > {seconds(APPLICATION_STALE_HOURS)}", m),
        _application,
        "age",
    ),
    Problem(
        STALE_LEVEL,
        "application",
        f"not fully protected for {NOT_FULLY_PROTECTED_HOURS} h",
        lambda m: _not_paused(f"{_fully_protected_age(m)} > {NOT_FULLY_PROTECTED}", m),
        _application,
        "age",
    ),
    Problem(
        STALE_LEVEL,
        "application",
        "services not backed up in the last day",
        lambda m: f"(\n{not_backed_up(*m)}\n) > 0",
        _application,
        "count",
    ),
    Problem(
        STALE_LEVEL,
        "backup",
        f"no success for {INSTANCE_STALE_INTERVALS} backup intervals",
        lambda m: (
            f"{_instance_success_age(m)}\n> {INSTANCE_STALE_INTERVALS} * "
            + per(INSTANCE_KEY, f"saas_backup_instance_backup_interval_seconds{sel(*m)}")
        ),
        _instance_name,
        "age",
    ),
    Problem(
        STALE_LEVEL,
        "backup",
        f"running for over {BACKUP_TOO_LONG_HOURS} h",
        lambda m: (
            age(per(INSTANCE_KEY, f"saas_backup_active_backup_start_timestamp_seconds{sel(*m)}"))
            + f" > {seconds(BACKUP_TOO_LONG_HOURS)}"
        ),
        _instance_name,
        "age",
    ),
    Problem(
        STALE_LEVEL,
        "restore",
        f"running for over {RESTORE_STUCK_HOURS} h",
        lambda m: f"{_restore_age('start', 'running', m)} > {seconds(RESTORE_STUCK_HOURS)}",
        _restore_job,
        "age",
    ),
    Problem(
        UNPROTECTED,
        "seat",
        "not licensed, so not backed up",
        lambda m: (
            "sum by (source, customer_id, seat_type) "
            f"({seat_counts('saas_backup_seats', *m, UNLICENSED)}) > 0"
        ),
        _seat_type,
        "count",
    ),
    Problem(
        UNPROTECTED,
        "application",
        "services found but not taken into backup",
        lambda m: _not_paused(f"{services('uningested', *m)} > 0", m),
        _application,
        "count",
    ),
    Problem(
        UNPROTECTED,
        "customer",
        "$1 at the vendor",
        lambda m: per(f"{CUSTOMER_KEY}, status", f"saas_backup_customer_info{sel(*m, NOT_ACTIVE)}"),
        _unnamed,
        what_from="status",
    ),
)


def _union(parts: Sequence[str]) -> str:
    return "\n" + "\nor\n".join(f"(\n{p}\n)" for p in parts) + "\n"


def levels(m: Matchers, *, named: bool = True) -> str:
    """Every problem, valued by its level."""
    return _union([f"0 * {p.series(m, named=named)} + {p.level}" for p in PROBLEMS])


def measured(m: Matchers, measure: str) -> str:
    """Every problem with an age (or a count), valued by it."""
    return _union([p.series(m) for p in PROBLEMS if p.measure == measure])


def customer_levels(m: Matchers) -> str:
    """Each customer's worst level, for customers with a problem."""
    return f"max by ({CUSTOMER_KEY}) ({levels(m, named=False)})"


def customers(m: Matchers) -> str:
    """Every customer (0), as it is named."""
    return f"0 * {per(CUSTOMER_KEY, f'saas_backup_customer_info{sel(*m)}')}"


def worst_age(m: Matchers) -> str:
    """Each customer's oldest backup: its licensed seats' last backups, its applications' newest
    finished backups unless that backup failed, its backup instances' last successes (where
    the vendor gives none, their newest finished backups unless failed), and the time since its
    applications were last fully protected. Failed backups are not backups; applications paused
    at the vendor are left out, as the alerts leave them out."""
    failed_or_paused = f"({_failed_applications(m)}\n  or {paused(*m)})"
    applications = f"{_application_age(m)}\n  unless on ({APPLICATION_KEY}) {failed_or_paused}"
    finished = f"saas_backup_last_backup_end_timestamp_seconds{sel(*m, NOT_FAILED)}"
    instances = f"{_instance_success_age(m)}\n  or {age(per(INSTANCE_KEY, finished))}"
    ages = {
        "seats": seat_age(*m, LICENSED),
        "applications": applications,
        "instances": instances,
        "protected": _not_paused(_fully_protected_age(m), m),
    }
    parts = [tag(f"(\n  {expr}\n)", "age_of", name) for name, expr in ages.items()]
    return f"max by ({CUSTOMER_KEY}) (\n" + "\nor\n".join(parts) + "\n)"


def sort_key(m: Matchers) -> str:
    """Each customer's level, plus less than a half that grows with its worst backup age: one
    number that sorts the worst state first and, within a state, the oldest backup first."""
    everyone = customers(m)
    return (
        f"(\n{customer_levels(m)}\nor\n{everyone}\n)\n+ on ({CUSTOMER_KEY})\n"
        f"(\n  atan(clamp_min({worst_age(m)}, 0) / 86400) / pi()\n  or\n  {everyone}\n)"
    )
