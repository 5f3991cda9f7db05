"""Every metric the exporter serves: name, type, help and label names, declared once.

The renderer addresses metrics through these definitions, with labels by name, so a label
given in the wrong place or forgotten fails at once instead of producing a wrong series.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

Kind = Literal["gauge", "counter"]

CACHED: Final = " Served from the exporter's cache; see saas_backup_cache_age_seconds."


# Compared and hashed by identity: each metric is declared once, and rendering looks its rows
# up by definition many thousands of times.
@dataclass(frozen=True, slots=True, eq=False)
class MetricDef:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    # Used on every row the renderer adds: built once.
    _names: frozenset[str] = field(init=False, repr=False)
    _pick: Callable[[dict[str, str]], tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", frozenset(self.labels))
        pick = operator.itemgetter(*self.labels)
        if len(self.labels) == 1:
            object.__setattr__(self, "_pick", lambda labels: (pick(labels),))
        else:
            object.__setattr__(self, "_pick", pick)

    def values(self, labels: dict[str, str]) -> tuple[str, ...]:
        """The label values in declared order; any missing or unknown label is an error."""
        if labels.keys() != self._names:
            raise ValueError(f"{self.name}: expected labels {self.labels}, got {sorted(labels)}")
        return self._pick(labels)


EXPORTER_BUILD_INFO: Final = MetricDef(
    "saas_backup_exporter_build_info",
    "gauge",
    "Build information of the exporter; always 1.",
    ("version",),
)


UP: Final = MetricDef(
    "saas_backup_up",
    "gauge",
    "1 if the source's last reads worked; 0 when its customer list cannot be read, when "
    "customer reads in a row fail, or when a running crawl stops making progress.",
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
    "Unix time at which a read of the source (its customer list or a customer) last worked.",
    ("source",),
)


REFRESH_DURATION_SECONDS: Final = MetricDef(
    "saas_backup_refresh_duration_seconds",
    "gauge",
    "How long the source's last crawl took, up to its cut-off.",
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
    "Vendor API requests by endpoint and HTTP status code (timeout or error: no response; "
    "too_large: the body passed max_body_bytes).",
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
    "1 if every read of this customer worked the last time it was read.",
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
    "Services of the application in its newest backup (for daily windows, the last day's): "
    "active, backed_up, perfect; uningested: found but not yet taken into backup." + CACHED,
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
    "Restore, download and export jobs started within the restore window, by status." + CACHED,
    ("source", "type", "status"),
)


RESTORE_JOB_START_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_restore_job_start_timestamp_seconds",
    "gauge",
    "Unix time at which a recent restore, download or export job started." + CACHED,
    ("source", "customer_id", "job_id", "type", "status"),
)


RESTORE_JOB_END_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_restore_job_end_timestamp_seconds",
    "gauge",
    "Unix time at which a recent restore, download or export job ended." + CACHED,
    ("source", "customer_id", "job_id", "type", "status"),
)

CUSTOMER_USED_BYTES: Final = MetricDef(
    "saas_backup_customer_used_bytes",
    "gauge",
    "Storage used by the customer's backups, as the vendor reports it." + CACHED,
    ("source", "customer_id"),
)


SEATS_BILLABLE: Final = MetricDef(
    "saas_backup_seats_billable",
    "gauge",
    "Seats the vendor bills for." + CACHED,
    ("source", "customer_id"),
)


APPLICATION_LAST_FULLY_PROTECTED_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_application_last_fully_protected_timestamp_seconds",
    "gauge",
    "Unix time at which every service of the application was last backed up; where the vendor "
    "gives only a bucket (over N days ago), the bucket's bound, so the age is a lower bound."
    + CACHED,
    ("source", "customer_id", "application"),
)


APPLICATION_USED_BYTES: Final = MetricDef(
    "saas_backup_application_used_bytes",
    "gauge",
    "Storage used by the application's backups, as the vendor reports it." + CACHED,
    ("source", "customer_id", "application"),
)


APPLICATION_ENABLED: Final = MetricDef(
    "saas_backup_application_enabled",
    "gauge",
    "1 if the application's backups are switched on at the vendor, 0 if paused or archived."
    + CACHED,
    ("source", "customer_id", "application"),
)


INSTANCE_LAST_SUCCESS_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_instance_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the backup instance's last successful backup, as the vendor reports it." + CACHED,
    ("source", "customer_id", "instance_id"),
)


INSTANCE_BACKUP_INTERVAL_SECONDS: Final = MetricDef(
    "saas_backup_instance_backup_interval_seconds",
    "gauge",
    "How often the backup instance is scheduled to back up; absent when its schedule is off."
    + CACHED,
    ("source", "customer_id", "instance_id"),
)


RESTORE_JOB_RECORDS_PROCESSED: Final = MetricDef(
    "saas_backup_restore_job_records_processed",
    "gauge",
    "Records a recent restore, download or export job has processed." + CACHED,
    ("source", "customer_id", "job_id", "type"),
)


RESTORE_JOB_RECORDS_FAILED: Final = MetricDef(
    "saas_backup_restore_job_records_failed",
    "gauge",
    "Records a recent restore, download or export job failed to process." + CACHED,
    ("source", "customer_id", "job_id", "type"),
)


CUSTOMER_DATA_AGE_SECONDS: Final = MetricDef(
    "saas_backup_customer_data_age_seconds",
    "gauge",
    "Age of the oldest vendor response behind the customer's served data.",
    ("source", "customer_id"),
)


CRAWL_PROGRESS: Final = MetricDef(
    "saas_backup_crawl_progress",
    "gauge",
    "Share (0-1) of the customers the source's current crawl set out to read that it has read, "
    "well or not; the last crawl's when none runs, and 1 when it had none to read.",
    ("source",),
)


CRAWL_CUSTOMERS: Final = MetricDef(
    "saas_backup_crawl_customers",
    "gauge",
    "Customers of the source's current crawl (the last one when none runs) by state: read, "
    "failed (read with an error), pending (not read yet).",
    ("source", "state"),
)


SOURCE_CUSTOMERS: Final = MetricDef(
    "saas_backup_source_customers",
    "gauge",
    "Customers in the source's newest customer list; absent until the exporter has read one "
    "since it started.",
    ("source",),
)


CRAWL_RUNNING: Final = MetricDef(
    "saas_backup_crawl_running",
    "gauge",
    "1 while a crawl of the source runs, 0 otherwise.",
    ("source",),
)


CRAWL_LAST_PROGRESS_TIMESTAMP_SECONDS: Final = MetricDef(
    "saas_backup_crawl_last_progress_timestamp_seconds",
    "gauge",
    "Unix time at which the source's crawl last finished reading a customer, well or not.",
    ("source",),
)


API_BUDGET_REMAINING_CALLS: Final = MetricDef(
    "saas_backup_api_budget_remaining_calls",
    "gauge",
    "Vendor API calls the source may still make in the current budget window before it "
    "reaches the reserve.",
    ("source",),
)


API_BUDGET_ALLOWED_CALLS_PER_HOUR: Final = MetricDef(
    "saas_backup_api_budget_allowed_calls_per_hour",
    "gauge",
    "Vendor API calls per hour the source's budget allows, after the reserve.",
    ("source",),
)


API_BUDGET_PLANNED_CALLS_PER_HOUR: Final = MetricDef(
    "saas_backup_api_budget_planned_calls_per_hour",
    "gauge",
    "Vendor API calls per hour the configured TTLs need for the customers known now.",
    ("source",),
)


API_BUDGET_FLEET_COVER_SECONDS: Final = MetricDef(
    "saas_backup_api_budget_fleet_cover_seconds",
    "gauge",
    "Projected time to read every customer of the source once at the allowed call rate.",
    ("source",),
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
    CUSTOMER_USED_BYTES,
    SEATS_BILLABLE,
    APPLICATION_LAST_FULLY_PROTECTED_TIMESTAMP_SECONDS,
    APPLICATION_USED_BYTES,
    APPLICATION_ENABLED,
    INSTANCE_LAST_SUCCESS_TIMESTAMP_SECONDS,
    INSTANCE_BACKUP_INTERVAL_SECONDS,
    RESTORE_JOB_RECORDS_PROCESSED,
    RESTORE_JOB_RECORDS_FAILED,
    CUSTOMER_DATA_AGE_SECONDS,
    CRAWL_PROGRESS,
    CRAWL_CUSTOMERS,
    SOURCE_CUSTOMERS,
    CRAWL_RUNNING,
    CRAWL_LAST_PROGRESS_TIMESTAMP_SECONDS,
    API_BUDGET_REMAINING_CALLS,
    API_BUDGET_ALLOWED_CALLS_PER_HOUR,
    API_BUDGET_PLANNED_CALLS_PER_HOUR,
    API_BUDGET_FLEET_COVER_SECONDS,
)
