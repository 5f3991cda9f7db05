"""PromQL for the dashboards: selectors, the joins and fallbacks they share, and query targets.

Every selector matches variables with `=~`, so the same query works for one value, several, or
All (`.*`). Customers are shown by the display name joined from saas_backup_customer_info; the
join's right-hand side is `topk by (...) (1, ...)` so that two info series for one customer (two
exporters that disagree on a name just changed, say) cannot break the join with a many-to-many
error.
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

SEAT_TIME: Final = "saas_backup_seat_last_backup_timestamp_seconds"
SEAT_AGE: Final = f"time() - {SEAT_TIME}"
BY_CUSTOMER: Final = "on (source, customer_id)"


def sel(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


SOURCE: Final = 'source=~"$source"'
CUSTOMER: Final = 'customer_id=~"$customer"'
LICENSED: Final = 'license_state="licensed"'
FAILED: Final = 'status="failed"'
LICENSE_STATES: Final = 'license_state=~"$license_state"'
JOBS: Final = 'job=~"$job"'
# One series per application, whichever exporter it came from, so that a table's queries share
# their labels and merge into one row per application.
PER_APPLICATION: Final = "max by (source, customer_id, application)"


def services(state: str, *matchers: str) -> str:
    """Each application's count of services in one state (active, backed_up, uningested)."""
    selector = sel(*matchers, f'state="{state}"')
    return f"{PER_APPLICATION} (saas_backup_application_services{selector})"


def not_backed_up(*matchers: str) -> str:
    """Per application, active services without a backup in the vendor's last daily window, as
    SaaSBackupServicesNotBackedUp counts them: an application whose backups are switched off at
    the vendor (a paused task) is not expected to back up, so left out."""
    return (
        f"(\n  {services('active', *matchers)}\n  - {services('backed_up', *matchers)}\n)\n"
        "unless on (source, customer_id, application) "
        f"(saas_backup_application_enabled{sel(*matchers)} == 0)"
    )


def or_zero(expr: str, where: str | None = None) -> str:
    """A count that is 0, not "No data", when nothing matches.

    With `where`, 0 only when that finds something: a count the vendor may not report at all
    stays "No data" rather than claim a healthy 0. tests/test_dashboards_live.py strips these exact
    suffixes to prove the query before it finds data.
    """
    if where is None:
        return f"{expr} or vector(0)"
    return f"{expr}\nor on () count({where}) * 0"


def with_customer_name(expr: str, selector: str, labels: str = "customer_name") -> str:
    return (
        f"{expr}\n* on (source, customer_id) group_left ({labels})\n"
        f"topk by (source, customer_id) (1, saas_backup_customer_info{selector})"
    )


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
