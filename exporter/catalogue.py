"""Every metric the exporter serves: name, type, help and label names, declared once.

The renderer addresses metrics through these definitions, with labels by name, so a label
given in the wrong place or forgotten fails at once instead of producing a wrong series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["gauge", "counter"]

CACHED: Final = " Served from the exporter's cache; see saas_backup_cache_age_seconds."


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]

    def values(self, labels: dict[str, str]) -> tuple[str, ...]:
        """The label values in declared order; any missing or unknown label is an error."""
        if labels.keys() != set(self.labels):
            raise ValueError(f"{self.name}: expected labels {self.labels}, got {sorted(labels)}")
        return tuple(labels[name] for name in self.labels)


EXPORTER_BUILD_INFO: Final = MetricDef(
    "saas_backup_exporter_build_info",
    "gauge",
    "Build information of the exporter; always 1.",
    ("version",),
)


UP: Final = MetricDef(
    "saas_backup_up",
    "gauge",
    "1 if the source's last refresh succeeded, 0 if it failed or none has completed.",
    ("source",),
)


SOURCE_INFO: Final = MetricDef(
    "saas_backup_source_info",
    "gauge",
    "A configured source; always 1.",
    ("source", "provider"),
)


LAST_REFRESH_SUCCESS_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_last_refresh_success_timestamp_seconds",
    "gauge",
    "Unix time at which the source's last successful refresh completed.",
    ("source",),
)


REFRESH_DURATION_SECONDS: Final = MetricDef(
    "saas_backup_refresh_duration_seconds",
    "gauge",
    "How long the source's last completed refresh took.",
    ("source",),
)


CACHE_AGE_SECONDS: Final = MetricDef(
    "saas_backup_cache_age_seconds",
    "gauge",
    "Age of the oldest vendor response behind the source's served data.",
    ("source",),
)


API_REQUESTS: Final = MetricDef(
    "saas_backup_api_requests",
    "counter",
    "Vendor API requests by endpoint and HTTP status code (timeout or error: no response).",
    ("source", "endpoint", "code"),
)


API_LIMIT_REMAINING: Final = MetricDef(
    "saas_backup_api_limit_remaining",
    "gauge",
    "Vendor rate budget left, as last reported by the vendor.",
    ("source",),
)


API_LIMIT_RESET_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_api_limit_reset_timestamp_seconds",
    "gauge",
    "Unix time at which the vendor's rate budget resets, as last reported.",
    ("source",),
)


API_LIMIT_COST: Final = MetricDef(
    "saas_backup_api_limit_cost",
    "counter",
    "Vendor rate budget consumed, summed from the cost the vendor reports per request.",
    ("source", "endpoint"),
)


PARSE_ERRORS: Final = MetricDef(
    "saas_backup_parse_errors",
    "counter",
    "Vendor values or records that could not be parsed and were dropped.",
    ("source",),
)


CUSTOMER_INFO: Final = MetricDef(
    "saas_backup_customer_info",
    "gauge",
    "A protected customer (tenant) and its display names; always 1." + CACHED,
    ("source", "customer_id", "customer_name", "domain", "product", "status"),
)


CUSTOMER_UP: Final = MetricDef(
    "saas_backup_customer_up",
    "gauge",
    "1 if every read of this customer worked in the last refresh.",
    ("source", "customer_id"),
)


CUSTOMER_SEATS_USED: Final = MetricDef(
    "saas_backup_customer_seats_used",
    "gauge",
    "Seats in use as the vendor's customer list reports them." + CACHED,
    ("source", "customer_id"),
)


CUSTOMER_SERVICES: Final = MetricDef(
    "saas_backup_customer_services",
    "gauge",
    "Services of the customer by state, as the vendor's customer list reports them." + CACHED,
    ("source", "customer_id", "state"),
)


CUSTOMER_BACKUP_RATIO: Final = MetricDef(
    "saas_backup_customer_backup_ratio",
    "gauge",
    "Share (0-1) of the customer's active services with a recent backup, per the vendor." + CACHED,
    ("source", "customer_id"),
)


SEATS: Final = MetricDef(
    "saas_backup_seats",
    "gauge",
    "Seats by type and license state." + CACHED,
    ("source", "customer_id", "seat_type", "license_state"),
)


SEATS_NEVER_BACKED_UP: Final = MetricDef(
    "saas_backup_seats_never_backed_up",
    "gauge",
    "Seats the vendor reports as never backed up, by type and license state." + CACHED,
    ("source", "customer_id", "seat_type", "license_state"),
)


SEAT_LAST_BACKUP_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_seat_last_backup_timestamp_seconds",
    "gauge",
    "Unix time of the seat's last backup." + CACHED,
    ("source", "customer_id", "seat_id", "seat_type", "license_state"),
)


SEAT_INFO: Final = MetricDef(
    "saas_backup_seat_info",
    "gauge",
    "A seat's display name; always 1." + CACHED,
    ("source", "customer_id", "seat_id", "seat_name"),
)


SEAT_SERIES_DROPPED: Final = MetricDef(
    "saas_backup_seat_series_dropped",
    "gauge",
    "Seats left out of the per-seat series by metrics.max_seat_series; "
    "the most recently backed-up seats are left out first.",
    ("source",),
)


APPLICATION_LAST_BACKUP_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_application_last_backup_timestamp_seconds",
    "gauge",
    "Unix time at which the application's newest finished backup ended." + CACHED,
    ("source", "customer_id", "application"),
)


APPLICATION_LAST_BACKUP_STATUS: Final = MetricDef(
    "saas_backup_application_last_backup_status",
    "gauge",
    "Status of the application's newest backup; always 1." + CACHED,
    ("source", "customer_id", "application", "status"),
)


APPLICATION_SERVICES: Final = MetricDef(
    "saas_backup_application_services",
    "gauge",
    "Services of the application in its newest backup: active, backed_up, perfect." + CACHED,
    ("source", "customer_id", "application", "state"),
)


BACKUP_INSTANCE_INFO: Final = MetricDef(
    "saas_backup_backup_instance_info",
    "gauge",
    "A backup instance (one protected workload) and its names; always 1." + CACHED,
    ("source", "customer_id", "instance_id", "instance_name", "definition"),
)


ACTIVE_BACKUP_START_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_active_backup_start_timestamp_seconds",
    "gauge",
    "Unix time at which a backup still running started; one series per running backup." + CACHED,
    ("source", "customer_id", "instance_id"),
)


LAST_BACKUP_END_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_last_backup_end_timestamp_seconds",
    "gauge",
    "Unix time at which the instance's newest finished backup ended." + CACHED,
    ("source", "customer_id", "instance_id", "status"),
)


RESTORE_JOBS: Final = MetricDef(
    "saas_backup_restore_jobs",
    "gauge",
    "Restore and download jobs started within the restore window, by status." + CACHED,
    ("source", "type", "status"),
)


RESTORE_JOB_START_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_restore_job_start_timestamp_seconds",
    "gauge",
    "Unix time at which a recent restore or download job started." + CACHED,
    ("source", "customer_id", "job_id", "type", "status"),
)


RESTORE_JOB_END_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_restore_job_end_timestamp_seconds",
    "gauge",
    "Unix time at which a recent restore or download job ended." + CACHED,
    ("source", "customer_id", "job_id", "type", "status"),
)


CATALOGUE: Final = (
    EXPORTER_BUILD_INFO,
    UP,
    SOURCE_INFO,
    LAST_REFRESH_SUCCESS_TIMESTAMP_SECONDS,
    REFRESH_DURATION_SECONDS,
    CACHE_AGE_SECONDS,
    API_REQUESTS,
    API_LIMIT_REMAINING,
    API_LIMIT_RESET_TIMESTAMP_SECONDS,
    API_LIMIT_COST,
    PARSE_ERRORS,
    CUSTOMER_INFO,
    CUSTOMER_UP,
    CUSTOMER_SEATS_USED,
    CUSTOMER_SERVICES,
    CUSTOMER_BACKUP_RATIO,
    SEATS,
    SEATS_NEVER_BACKED_UP,
    SEAT_LAST_BACKUP_TIMESTAMP_SECONDS,
    SEAT_INFO,
    SEAT_SERIES_DROPPED,
    APPLICATION_LAST_BACKUP_TIMESTAMP_SECONDS,
    APPLICATION_LAST_BACKUP_STATUS,
    APPLICATION_SERVICES,
    BACKUP_INSTANCE_INFO,
    ACTIVE_BACKUP_START_TIMESTAMP_SECONDS,
    LAST_BACKUP_END_TIMESTAMP_SECONDS,
    RESTORE_JOBS,
    RESTORE_JOB_START_TIMESTAMP_SECONDS,
    RESTORE_JOB_END_TIMESTAMP_SECONDS,
)
