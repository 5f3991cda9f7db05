"""The recording rules, and the alerts about the exporter, its sources, customers, seats and
services (alerts/rules.py gathers them)."""

from __future__ import annotations

from typing import Final

from alerts.exprs import (
    CUSTOMER,
    CUSTOMER_AT,
    DEDUP,
    GAP,
    KEEP_FIRING,
    NOT_PAUSED,
    OVERRIDE,
    PER_APPLICATION,
    PER_CUSTOMER,
    THRESHOLD,
    block,
    customer_name,
    over,
    query_value,
    seconds,
    spelled,
    threshold_hours,
)
from alerts.model import Alert, Record
from alerts.thresholds import (
    API_BUDGET_LOW,
    CUSTOMER_GONE_WINDOW_HOURS,
    JOB_MATCHER,
    OVERRIDABLE,
    SEAT_FIRST_BACKUP_GRACE_HOURS,
    SOURCE_STALE_HOURS,
    UNINGESTED_FOR_HOURS,
)

SEATS_NOT_BACKED_UP: Final = "saas_backup_customer:seats_not_backed_up_{}:count"
BACKUPS_FAILED: Final = "saas_backup_customer:backups_failed:count"
GONE_WINDOW: Final = f"{CUSTOMER_GONE_WINDOW_HOURS}h"
SERVICES: Final = 'saas_backup_application_services{{state="{}"}}'
# Applications and backup instances by the status of their newest backup: both metrics carry
# `status`, and their other labels (application, instance_id) keep them apart.
NEWEST_BACKUP: Final = (
    '{{__name__=~"saas_backup_application_last_backup_status'
    '|saas_backup_last_backup_end_timestamp_seconds",status=~"{}"}}'
)


def stale_seats(tier: str, threshold: str, comment: str = "") -> Record:
    return Record(
        SEATS_NOT_BACKED_UP.format(tier),
        block(
            f"count {PER_CUSTOMER} (",
            f"  {DEDUP} (",
            '    time() - saas_backup_seat_last_backup_timestamp_seconds{license_state="licensed"}',
            "  )",
            f"  {over(threshold)}",
            ")",
        ),
        comment,
    )


def threshold_record(name: str, hours: int) -> Record:
    return Record(
        THRESHOLD,
        block(
            "3600 * (",
            f'  max by (source, customer_id) ({OVERRIDE}{{threshold="{name}"}})',
            "  or on (source, customer_id)",
            f"  {hours} * group by (source, customer_id) (saas_backup_customer_info)",
            ")",
        ),
        comment=(
            f'Each customer\'s {name} threshold: its {OVERRIDE}{{threshold="{name}"}} if you '
            f"record one (docs/alerting.md), else the default of {hours} hours."
            if name == next(iter(OVERRIDABLE))
            else ""
        ),
        labels=(("threshold", name),),
    )


RECORDS: Final = (
    *(threshold_record(name, hours) for name, hours in OVERRIDABLE.items()),
    stale_seats(
        "24h",
        "seat_stale",
        "Licensed seats whose last backup is older than the customer's seat_stale / "
        "seat_critical threshold, counted per customer.",
    ),
    stale_seats("72h", "seat_critical"),
    Record(
        BACKUPS_FAILED,
        block(
            f"count {PER_CUSTOMER} (",
            f"  {DEDUP} ({NEWEST_BACKUP.format('failed')})",
            f"  {NOT_PAUSED}",
            ")",
        ),
        comment="Applications and backup instances whose newest backup failed, per customer.",
    ),
    Record(
        "saas_backup_customer:info:name",
        "max by (source, customer_id, customer_name) (saas_backup_customer_info)",
        comment="Customer display names, one series per customer, for joins.",
    ),
)

EXPORTER_ALERTS: Final = (
    Alert(
        "SaaSBackupExporterDown",
        block(
            f"up{{{JOB_MATCHER}}} == 0",
            "# Blind only when no replica answers: one of a pair down leaves the other's word.",
            f"unless on (job) (up{{{JOB_MATCHER}}} == 1)",
        ),
        "5m",
        "critical",
        "The SaaS backup exporter cannot be scraped.",
        "Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for 5 "
        "minutes: backup health is unknown for every vendor. Check the exporter's process and "
        "its log.",
    ),
    Alert(
        "SaaSBackupExporterAbsent",
        f"absent(up{{{JOB_MATCHER}}})",
        "10m",
        "critical",
        "The SaaS backup exporter is not being scraped at all.",
        "No target of job {{ $labels.job }} has existed for 10 minutes: the exporter is gone "
        "from service discovery, or the job is misnamed. Restore the scrape job.",
    ),
    Alert(
        "SaaSBackupSourceDown",
        "max by (job, source) (saas_backup_up) == 0",
        "15m",
        "critical",
        "A backup vendor's API cannot be read.",
        "The exporter's refreshes of source {{ $labels.source }} have failed for 15 minutes; "
        "its backup data is ageing. Read the vendor's error on the exporter's status page, then "
        "fix the keys (401) or wait out the vendor (5xx).",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupSourceEmpty",
        "max by (job, source) (saas_backup_source_customers) == 0",
        "15m",
        "critical",
        "A backup vendor lists no customers.",
        "Source {{ $labels.source }} answers with an empty customer list: no customer's backups "
        "are watched. Check that the API key still belongs to the partner account that holds "
        "the customers.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupSourceAbsent",
        block(
            "group by (job, source) (max_over_time(saas_backup_up[1d]))",
            "unless on (job, source) saas_backup_up",
            f"and on (job) (max by (job) (up{{{JOB_MATCHER}}}) == 1)",
        ),
        "15m",
        "warning",
        "A backup source has vanished from the exporter.",
        "The exporter served source {{ $labels.source }} within the last day and serves it no "
        "more (if it was removed from the configuration on purpose, this resolves within a day). "
        "Restore it in the configuration otherwise.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupSourceStale",
        "time() - max by (job, source) (saas_backup_last_refresh_success_timestamp_seconds)"
        f" > {seconds(SOURCE_STALE_HOURS)}",
        "15m",
        "warning",
        "A backup vendor's data has not been refreshed for hours.",
        "Source {{ $labels.source }} last refreshed successfully "
        "{{ $value | humanizeDuration }} ago. Check its crawl and last error on the exporter's "
        "status page.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupAPIBudgetLow",
        f"min by (job, source) (saas_backup_api_limit_remaining) < {API_BUDGET_LOW}",
        "15m",
        "warning",
        "A vendor's API rate budget is nearly exhausted.",
        "Source {{ $labels.source }} has {{ $value }} units of its hourly API budget left; "
        "refreshes will soon be paused until it resets. Look for other tools spending the same "
        "partner account's budget.",
    ),
    Alert(
        "SaaSBackupAPIRateLimited",
        "sum by (job, source, endpoint) "
        '(increase(saas_backup_api_requests_total{code="429"}[30m])) > 0',
        "30m",
        "warning",
        "A vendor keeps rate-limiting the exporter.",
        "Source {{ $labels.source }} answered {{ $value | humanize }} requests to "
        "{{ $labels.endpoint }} with HTTP 429 in the last 30 minutes. Lower the source's "
        "budget.calls_per_hour or find who else spends the budget.",
    ),
)

CUSTOMER_ALERTS: Final = (
    Alert(
        "SaaSBackupCustomerUnreadable",
        f"max {PER_CUSTOMER} (saas_backup_customer_up) == 0",
        "1h",
        "warning",
        "A customer's backup data cannot be read.",
        f"The exporter has not been able to read customer {CUSTOMER_AT} for an hour; its "
        "other alerts are held back. Check the error on the exporter's status page.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupCustomerGone",
        block(
            f"group {PER_CUSTOMER} (max_over_time(saas_backup_customer_info[{GONE_WINDOW}]))",
            f"unless on ({CUSTOMER}) saas_backup_customer_info",
            "# Only once every customer the source lists is served again: not while a first",
            "# crawl is still reading them.",
            "and on (job, source) (",
            "  max by (job, source) (saas_backup_source_customers)",
            f"  <= count by (job, source) (group {PER_CUSTOMER} (saas_backup_customer_info))",
            ")",
        ),
        "15m",
        "warning",
        "A customer has disappeared from its backup vendor.",
        f"Customer {customer_name(GONE_WINDOW)} ({{{{ $labels.customer_id }}}}) is no longer "
        "listed by source {{ $labels.source }}: it was offboarded, or its backups were removed. "
        "Confirm with the customer's contract; this resolves by itself after "
        f"{spelled(CUSTOMER_GONE_WINDOW_HOURS)}.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupCustomerNotActive",
        block(
            f"group by ({CUSTOMER}, status) (",
            '  saas_backup_customer_info{status=~"inactive|suspended|cancelled|expired"}',
            ")",
        ),
        "1h",
        "info",
        "A customer's domain is not active at the vendor.",
        f"Customer {CUSTOMER_AT} is {{{{ $labels.status }}}}: its data is not being backed up, "
        "and its other alerts are held back. Reactivate it at the vendor if that is not "
        "intended.",
        keep_firing_for=KEEP_FIRING,
    ),
)

SEAT_ALERTS: Final = (
    Alert(
        "SaaSBackupSeatsNotBackedUp24h",
        f"{SEATS_NOT_BACKED_UP.format('24h')} > 0",
        "1h",
        "warning",
        "Licensed seats have not been backed up within a day.",
        f"{{{{ $value }}}} licensed seats of {CUSTOMER_AT} have not been backed up for more "
        f"than {threshold_hours('seat_stale')} hours. Check those users in the vendor's portal "
        "(mailbox moved, licence removed, token expired).",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupSeatsNotBackedUp72h",
        f"{SEATS_NOT_BACKED_UP.format('72h')} > 0",
        "1h",
        "critical",
        "Licensed seats have not been backed up for days.",
        f"{{{{ $value }}}} licensed seats of {CUSTOMER_AT} have not been backed up for more "
        f"than {threshold_hours('seat_critical')} hours ("
        + query_value(
            SEATS_NOT_BACKED_UP.format("24h") + "{source=%q,customer_id=%q}",
            "source",
            "customer_id",
        )
        + f" for more than {threshold_hours('seat_stale')} hours). Open a vendor ticket now: "
        "these users have no recent restore point.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupSeatsNeverBackedUp",
        block(
            f"sum {PER_CUSTOMER} (",
            f"  {DEDUP} (",
            "    max_over_time(saas_backup_seats_never_backed_up"
            f'{{license_state="licensed"}}[{GAP}])',
            "  )",
            ") > 0",
        ),
        f"{SEAT_FIRST_BACKUP_GRACE_HOURS}h",
        "warning",
        "Licensed seats have never been backed up.",
        f"{{{{ $value }}}} licensed seats of {CUSTOMER_AT} have had no backup in over "
        f"{spelled(SEAT_FIRST_BACKUP_GRACE_HOURS)} of being licensed. Check that the vendor can "
        "reach those users.",
        for_comment=(
            "The grace period: a newly licensed seat gets "
            f"{spelled(SEAT_FIRST_BACKUP_GRACE_HOURS)} for its first backup."
        ),
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupNewUnprotectedSeats",
        block(
            f"sum {PER_CUSTOMER} ({DEDUP} "
            f'(max_over_time(saas_backup_seats{{license_state="unlicensed"}}[{GAP}])))',
            f"- sum {PER_CUSTOMER} ({DEDUP} "
            f'(max_over_time(saas_backup_seats{{license_state="unlicensed"}}[{GAP}] offset 1d)))',
            "> 0",
        ),
        "1h",
        "info",
        "New seats are unlicensed, so not protected.",
        f"{CUSTOMER_AT} has {{{{ $value }}}} more unlicensed seats than a day ago: new users or "
        "mailboxes are not being backed up. List them with `saas-backup-exporter seats list "
        "--state unlicensed` and license those that need it.",
        for_comment="The exporter serves a zero for unlicensed seats, so 0 -> N counts too.",
        keep_firing_for=KEEP_FIRING,
    ),
)

SERVICE_ALERTS: Final = (
    Alert(
        "SaaSBackupServicesNotBackedUp",
        block(
            "(",
            f"  {PER_APPLICATION} ({SERVICES.format('active')})",
            f"  - {PER_APPLICATION} ({SERVICES.format('backed_up')})",
            "  > 0",
            ")",
            NOT_PAUSED,
        ),
        "1h",
        "warning",
        "Services of an application were not backed up in the last day.",
        "{{ $value }} of "
        + query_value(
            "max(saas_backup_application_services"
            '{state="active",source=%q,customer_id=%q,application=%q})',
            "source",
            "customer_id",
            "application",
        )
        + f" {{{{ $labels.application }}}} services of {CUSTOMER_AT} were not backed up in "
        "the last day. Check the vendor's backup report, which lists them.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupApplicationNotFullyProtected",
        block(
            "(",
            f"  time() - {PER_APPLICATION} "
            "(saas_backup_application_last_fully_protected_timestamp_seconds)",
            f"  {over('not_fully_protected')}",
            ")",
            NOT_PAUSED,
        ),
        "1h",
        "critical",
        "An application has not been fully protected for days.",
        f"{{{{ $labels.application }}}} of {CUSTOMER_AT} was last fully protected (every service "
        "backed up) at least {{ $value | humanizeDuration }} ago, more than "
        f"{threshold_hours('not_fully_protected')} hours. Open a vendor ticket now.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupServicesUningested",
        block(
            f"({PER_APPLICATION} (max_over_time({SERVICES.format('uningested')}[{GAP}])) > 0)",
            NOT_PAUSED,
        ),
        f"{UNINGESTED_FOR_HOURS}h",
        "warning",
        "Services found by the backup have not been taken into it for "
        f"{spelled(UNINGESTED_FOR_HOURS)}.",
        f"{{{{ $value }}}} {{{{ $labels.application }}}} services of {CUSTOMER_AT} have been "
        f"found but not taken into backup for over {spelled(UNINGESTED_FOR_HOURS)}. Add them "
        "to the backup in the vendor's portal, or exclude them.",
        for_comment=(
            "The grace period: services the vendor has found get "
            f"{spelled(UNINGESTED_FOR_HOURS)} to be taken into backup."
        ),
        keep_firing_for=KEEP_FIRING,
    ),
)
