"""PromQL for the dashboards: selectors, the joins and fallbacks they share, and query targets.

Every selector matches variables with `=~`, so the same query works for one value, several, or
All, and every selector carries the `job` and `instance` matchers (dashboard-linter's
target-job-rule and target-instance-rule). Customers are shown by the display name joined from
saas_backup_customer_info; the join's right-hand side is `topk by (...) (1, ...)` so that two info
series for one customer (two exporters that disagree on a name just changed, say) cannot break
the join with a many-to-many error.

Two exporter replicas may scrape the same vendors: every series then comes twice, once per
`instance`. So each count or sum first takes one series per thing it counts, `max by` the labels
that name that thing (`per(...)`), and only then adds up.
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from alerts.thresholds import NOT_FULLY_PROTECTED_HOURS, SEAT_CRITICAL_HOURS, SEAT_STALE_HOURS

# Each dashboard takes its Prometheus from a `datasource` variable: the JSON names no data
# source of anyone's.
DATASOURCE: Final = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")


def seconds(hours: int) -> int:
    return hours * 3600


STALE: Final = seconds(SEAT_STALE_HOURS)  # as SaaSBackupSeatsNotBackedUp24h
CRITICAL: Final = seconds(SEAT_CRITICAL_HOURS)  # as SaaSBackupSeatsNotBackedUp72h
# As SaaSBackupApplicationNotFullyProtected.
NOT_FULLY_PROTECTED: Final = seconds(NOT_FULLY_PROTECTED_HOURS)

JOB: Final = 'job=~"$job"'
INSTANCE: Final = 'instance=~"$instance"'
SOURCE: Final = 'source=~"$source"'
CUSTOMER: Final = 'customer_id=~"$customer"'
LICENSED: Final = 'license_state="licensed"'
FAILED: Final = 'status="failed"'
LICENSE_STATES: Final = 'license_state=~"$license_state"'

# The labels that name one thing, whichever exporter replica reported it.
CUSTOMER_KEY: Final = "source, customer_id"
SEAT_KEY: Final = "source, customer_id, seat_id"
SEAT_COUNT_KEY: Final = "source, customer_id, seat_type, license_state"
APPLICATION_KEY: Final = "source, customer_id, application"
INSTANCE_KEY: Final = "source, customer_id, instance_id"
JOB_KEY: Final = "source, customer_id, job_id, type, status"
BY_CUSTOMER: Final = f"on ({CUSTOMER_KEY})"
# One series per application, whichever exporter it came from, so that a table's queries share
# their labels and merge into one row per application.
PER_APPLICATION: Final = f"max by ({APPLICATION_KEY})"


def sel(*matchers: str) -> str:
    """A selector with the given matchers and the dashboard's job and instance."""
    return "{" + ", ".join([*matchers, JOB, INSTANCE]) + "}"


def per(key: str, expr: str) -> str:
    """One series per thing that `key` names: replicas' copies counted once."""
    return f"max by ({key}) ({expr})"


def age(timestamps: str) -> str:
    return f"(time() - {timestamps})"


SEAT_TIME: Final = "saas_backup_seat_last_backup_timestamp_seconds"


def seat_age(*matchers: str) -> str:
    return age(per(SEAT_KEY, f"{SEAT_TIME}{sel(*matchers)}"))


def seat_counts(metric: str, *matchers: str) -> str:
    return per(SEAT_COUNT_KEY, f"{metric}{sel(*matchers)}")


def sources_up(s: str) -> str:
    """Each selected source: 1 if its reads work at any replica, 0 if they fail at all."""
    return per("source", f"saas_backup_up{s}")


# The start of while_up's fallback, by which tests find it.
ZERO_SUFFIX: Final = "or on () 0 * (count("


def while_up(expr: str, s: str) -> str:
    """`expr`, or a real 0 while every selected source is up.

    A count of problems is No data, not a healthy-looking 0, while a source is down (its last
    data may be old), while no source reports (the exporter down or absent), and, for the
    caller, when `expr` has nothing to count: the 0 is derived from sources that exist and are up,
    never from `vector(0)`. tests/test_dashboards_live.py strips this suffix (ZERO_SUFFIX) to prove
    the query before it finds data.
    """
    up = sources_up(s)
    return f"{expr}\n{ZERO_SUFFIX}{up} == 1) unless on () ({up} == 0))"


def where_reported(expr: str, where: str) -> str:
    """`expr`, or 0 where `where` finds something: a count the vendor may not report at all
    stays No data rather than claim a healthy 0."""
    return f"{expr}\nor on () count({where}) * 0"


def services(state: str, *matchers: str) -> str:
    """Each application's count of services in one state (active, backed_up, uningested)."""
    selector = sel(*matchers, f'state="{state}"')
    return per(APPLICATION_KEY, f"saas_backup_application_services{selector}")


def paused(*matchers: str) -> str:
    """Applications whose backups are switched off at the vendor (a paused task): not expected to
    back up, so left out of what is stale or missed, as the alerts leave them out."""
    return f"({per(APPLICATION_KEY, f'saas_backup_application_enabled{sel(*matchers)}')} == 0)"


def not_backed_up(*matchers: str) -> str:
    """Per application, active services without a backup in the vendor's last daily window, as
    SaaSBackupServicesNotBackedUp counts them."""
    return (
        f"(\n  {services('active', *matchers)}\n  - {services('backed_up', *matchers)}\n)\n"
        f"unless on ({APPLICATION_KEY}) {paused(*matchers)}"
    )


def with_customer_name(expr: str, selector: str, labels: str = "customer_name") -> str:
    return (
        f"(\n{expr}\n)\n* {BY_CUSTOMER} group_left ({labels})\n"
        f"topk by ({CUSTOMER_KEY}) (1, saas_backup_customer_info{selector})"
    )


def tag(expr: str, label: str, value: str) -> str:
    """`expr` with one more label, constant: keeps apart series that would otherwise share
    their labels in an `or`."""
    return f'label_replace({expr}, "{label}", "{value}", "", "")'


def query(
    expr: str,
    ref: str = "A",
    *,
    legend: str | None = None,
    instant: bool = False,
    as_table: bool = False,
) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend is not None:
        target = target.legend_format(legend)
    if as_table:
        target = target.format(PromQueryFormat.TABLE).instant()
    elif instant:
        target = target.instant()
    else:
        target = target.range()
    return target
