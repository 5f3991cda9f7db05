"""The rules, as data built from thresholds.py; alerts/generate.py writes them out.

Alert and record names are fixed, whatever the thresholds: the Alertmanager example, the
runbooks and users' silences refer to them.
"""

from __future__ import annotations

from typing import Final

from alerts.model import Alert, Group, Record
from alerts.thresholds import (
    API_BUDGET_LOW,
    APPLICATION_STALE_HOURS,
    BACKUP_TOO_LONG_HOURS,
    INSTANCE_STALE_INTERVALS,
    JOB_MATCHER,
    NOT_FULLY_PROTECTED_HOURS,
    RESTORE_FAILED_WITHIN_HOURS,
    RESTORE_STUCK_HOURS,
    SEAT_CRITICAL_HOURS,
    SEAT_FIRST_BACKUP_GRACE_HOURS,
    SEAT_STALE_HOURS,
    SOURCE_STALE_HOURS,
    UNINGESTED_FOR_HOURS,
)

NUMBERS: Final = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}


def spelled(hours: int) -> str:
    """24 -> "a day", 72 -> "three days", 1 -> "an hour", 36 -> "36 hours"."""
    if hours % 24:
        return "an hour" if hours == 1 else f"{hours} hours"
    days = hours // 24
    return "a day" if days == 1 else f"{NUMBERS.get(days, str(days))} days"


def seconds(hours: int) -> str:
    """Hours as PromQL seconds, written so a reader sees the hours."""
    return f"{hours} * 3600"


def block(*lines: str) -> str:
    """A multi-line expression, which the rules file shows as a block."""
    return "\n".join(lines) + "\n"


# Joins the customer's display name onto a per-customer alert.
NAMED: Final = (
    "* on (source, customer_id) group_left (customer_name) saas_backup_customer:info:name"
)
LICENSED_SEAT_AGE: Final = (
    'time() - saas_backup_seat_last_backup_timestamp_seconds{license_state="licensed"}'
)
SEATS_NOT_BACKED_UP: Final = "saas_backup_customer:seats_not_backed_up_{}:count"
FAILED_RESTORE_AGE: Final = (
    'time() - saas_backup_restore_job_end_timestamp_seconds{status="failed"}'
    f" < {seconds(RESTORE_FAILED_WITHIN_HOURS)}"
)
RUNNING_RESTORE_AGE: Final = (
    'time() - saas_backup_restore_job_start_timestamp_seconds{status="running"}'
    f" > {seconds(RESTORE_STUCK_HOURS)}"
)

# Leaves out applications whose backups are switched off at the vendor (a paused or archived
# task): they are not expected to back up.
NOT_PAUSED: Final = (
    "unless on (source, customer_id, application) (saas_backup_application_enabled == 0)"
)
# One series per application or instance, whichever exporter (scrape target) it came from.
PER_APPLICATION: Final = "max by (source, customer_id, application)"
PER_INSTANCE: Final = "max by (source, customer_id, instance_id)"
SERVICES: Final = 'saas_backup_application_services{{state="{}"}}'


def query_value(selector: str, *labels: str, pipe: str = "") -> str:
    """A template printing the first value of `selector`, its %q verbs filled with the alert's
    labels (quoted as PromQL strings); "?" if it finds nothing."""
    args = " ".join(f"$labels.{label}" for label in labels)
    return (
        f"{{{{ with printf `{selector}` {args} | query }}}}"
        f"{{{{ . | first | value{pipe} }}}}{{{{ else }}}}?{{{{ end }}}}"
    )


def stale_seats(tier: str, hours: int, comment: str = "") -> Record:
    return Record(
        SEATS_NOT_BACKED_UP.format(tier),
        block(
            "count by (source, customer_id) (",
            f"  {LICENSED_SEAT_AGE} > {seconds(hours)}",
            ")",
        ),
        comment,
    )


RECORDS: Final = (
    stale_seats(
        "24h",
        SEAT_STALE_HOURS,
        f"Licensed seats whose last backup is older than {SEAT_STALE_HOURS} h / "
        f"{SEAT_CRITICAL_HOURS} h, counted per customer.",
    ),
    stale_seats("72h", SEAT_CRITICAL_HOURS),
    Record(
        "saas_backup_customer:info:name",
        "max by (source, customer_id, customer_name) (saas_backup_customer_info)",
        comment="Customer display names, one series per customer, for joins.",
    ),
)

EXPORTER_ALERTS: Final = (
    Alert(
        "SaaSBackupExporterDown",
        f"up{{{JOB_MATCHER}}} == 0",
        "5m",
        "critical",
        "The SaaS backup exporter cannot be scraped.",
        "Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for 5 "
        "minutes: backup health is unknown for every vendor.",
    ),
    Alert(
        "SaaSBackupExporterAbsent",
        f"absent(up{{{JOB_MATCHER}}})",
        "10m",
        "critical",
        "The SaaS backup exporter is not being scraped at all.",
        "No target of job {{ $labels.job }} has existed for 10 minutes: the exporter is gone "
        "from service discovery, or the job is misnamed.",
    ),
    Alert(
        "SaaSBackupSourceDown",
        "saas_backup_up == 0",
        "15m",
        "critical",
        "A backup vendor's API cannot be read.",
        "The exporter's refreshes of source {{ $labels.source }} have failed for 15 minutes; "
        "its backup data is ageing (see the landing page for the vendor's error).",
    ),
    Alert(
        "SaaSBackupSourceStale",
        "time() - saas_backup_last_refresh_success_timestamp_seconds"
        f" > {seconds(SOURCE_STALE_HOURS)}",
        "15m",
        "warning",
        "A backup vendor's data has not been refreshed for hours.",
        "Source {{ $labels.source }} last refreshed successfully "
        "{{ $value | humanizeDuration }} ago.",
    ),
    Alert(
        "SaaSBackupAPIBudgetLow",
        f"saas_backup_api_limit_remaining < {API_BUDGET_LOW}",
        "15m",
        "warning",
        "A vendor's API rate budget is nearly exhausted.",
        "Source {{ $labels.source }} has {{ $value }} units of its hourly API budget left; "
        "refreshes will soon be paused until it resets.",
    ),
    Alert(
        "SaaSBackupAPIRateLimited",
        'sum by (source, endpoint) (increase(saas_backup_api_requests_total{code="429"}[30m])) > 0',
        "30m",
        "warning",
        "A vendor keeps rate-limiting the exporter.",
        "Source {{ $labels.source }} answered {{ $value | humanize }} requests to "
        "{{ $labels.endpoint }} with HTTP 429 in the last 30 minutes.",
    ),
    Alert(
        "SaaSBackupCustomerUnreadable",
        block("(saas_backup_customer_up == 0)", NAMED),
        "1h",
        "warning",
        "A customer's backup data cannot be read.",
        "The exporter has not been able to read customer {{ $labels.customer_name }} "
        "({{ $labels.customer_id }}) from source {{ $labels.source }} for an hour.",
    ),
)

SEAT_ALERTS: Final = (
    Alert(
        "SaaSBackupSeatsNotBackedUp24h",
        block(f"({SEATS_NOT_BACKED_UP.format('24h')} > 0)", NAMED),
        "1h",
        "warning",
        f"Licensed seats have not been backed up for {spelled(SEAT_STALE_HOURS)}.",
        "{{ $value }} licensed seats of {{ $labels.customer_name }} ({{ $labels.source }}) "
        f"have not been backed up for more than {SEAT_STALE_HOURS} hours.",
    ),
    Alert(
        "SaaSBackupSeatsNotBackedUp72h",
        block(f"({SEATS_NOT_BACKED_UP.format('72h')} > 0)", NAMED),
        "1h",
        "critical",
        f"Licensed seats have not been backed up for {spelled(SEAT_CRITICAL_HOURS)}.",
        "{{ $value }} licensed seats of {{ $labels.customer_name }} ({{ $labels.source }}) "
        f"have not been backed up for more than {SEAT_CRITICAL_HOURS} hours.",
    ),
    Alert(
        "SaaSBackupSeatsNeverBackedUp",
        block(
            "(sum by (source, customer_id) "
            '(saas_backup_seats_never_backed_up{license_state="licensed"}) > 0)',
            NAMED,
        ),
        f"{SEAT_FIRST_BACKUP_GRACE_HOURS}h",
        "warning",
        "Licensed seats have never been backed up.",
        "{{ $value }} licensed seats of {{ $labels.customer_name }} ({{ $labels.source }}) "
        f"have had no backup in over {spelled(SEAT_FIRST_BACKUP_GRACE_HOURS)} of being licensed.",
        for_comment=(
            "The grace period: a newly licensed seat gets "
            f"{spelled(SEAT_FIRST_BACKUP_GRACE_HOURS)} for its first backup."
        ),
    ),
)

BACKUP_ALERTS: Final = (
    Alert(
        "SaaSBackupApplicationBackupFailed",
        block(
            "count by (source, customer_id) "
            '(saas_backup_application_last_backup_status{status="failed"})',
            NAMED,
        ),
        "2h",
        "warning",
        "An application's newest backup failed.",
        "The newest backup of {{ $value }} applications of {{ $labels.customer_name }} "
        "({{ $labels.source }}) failed, and no later one has succeeded for 2 hours.",
    ),
    Alert(
        "SaaSBackupApplicationBackupStale",
        block(
            "count by (source, customer_id) (",
            "  (time() - saas_backup_application_last_backup_timestamp_seconds"
            f" > {seconds(APPLICATION_STALE_HOURS)})",
            f"  {NOT_PAUSED}",
            ")",
            NAMED,
        ),
        "1h",
        "warning",
        f"An application has not been backed up for {spelled(APPLICATION_STALE_HOURS)}.",
        "{{ $value }} applications of {{ $labels.customer_name }} ({{ $labels.source }}) "
        f"have not finished a backup for more than {APPLICATION_STALE_HOURS} hours.",
    ),
    Alert(
        "SaaSBackupRunningTooLong",
        block(
            "(time() - saas_backup_active_backup_start_timestamp_seconds"
            f" > {seconds(BACKUP_TOO_LONG_HOURS)})",
            NAMED,
        ),
        "30m",
        "warning",
        f"A backup has been running for more than {BACKUP_TOO_LONG_HOURS} hours.",
        "The backup of {{ $labels.customer_name }} (instance {{ $labels.instance_id }}, "
        "{{ $labels.source }}) has been running for {{ $value | humanizeDuration }}.",
    ),
)

SERVICE_ALERTS: Final = (
    Alert(
        "SaaSBackupServicesNotBackedUp",
        block(
            "(",
            "  (",
            f"    {PER_APPLICATION} ({SERVICES.format('active')})",
            f"    - {PER_APPLICATION} ({SERVICES.format('backed_up')})",
            "    > 0",
            "  )",
            f"  {NOT_PAUSED}",
            ")",
            NAMED,
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
        + " {{ $labels.application }} services of {{ $labels.customer_name }} "
        "({{ $labels.source }}) were not backed up in the last day.",
    ),
    Alert(
        "SaaSBackupApplicationNotFullyProtected",
        block(
            "(",
            "  (",
            f"    time() - {PER_APPLICATION} "
            "(saas_backup_application_last_fully_protected_timestamp_seconds)",
            f"    > {seconds(NOT_FULLY_PROTECTED_HOURS)}",
            "  )",
            f"  {NOT_PAUSED}",
            ")",
            NAMED,
        ),
        "1h",
        "critical",
        f"An application has not been fully protected for {spelled(NOT_FULLY_PROTECTED_HOURS)}.",
        "{{ $labels.application }} of {{ $labels.customer_name }} ({{ $labels.source }}) was "
        "last fully protected (every service backed up) at least "
        f"{{{{ $value | humanizeDuration }}}} ago, more than {NOT_FULLY_PROTECTED_HOURS} hours.",
    ),
    Alert(
        "SaaSBackupServicesUningested",
        block(
            "(",
            f"  ({PER_APPLICATION} ({SERVICES.format('uningested')}) > 0)",
            f"  {NOT_PAUSED}",
            ")",
            NAMED,
        ),
        f"{UNINGESTED_FOR_HOURS}h",
        "warning",
        "Services found by the backup have not been taken into it for "
        f"{spelled(UNINGESTED_FOR_HOURS)}.",
        "{{ $value }} {{ $labels.application }} services of {{ $labels.customer_name }} "
        "({{ $labels.source }}) have been found but not taken into backup for over "
        f"{spelled(UNINGESTED_FOR_HOURS)}.",
        for_comment=(
            "The grace period: services the vendor has found get "
            f"{spelled(UNINGESTED_FOR_HOURS)} to be taken into backup."
        ),
    ),
)

INSTANCE_ALERTS: Final = (
    Alert(
        "SaaSBackupInstanceBackupFailed",
        block(
            '(time() - saas_backup_last_backup_end_timestamp_seconds{status="failed"})',
            NAMED,
        ),
        "2h",
        "warning",
        "A backup instance's newest backup failed.",
        "The newest backup of instance {{ $labels.instance_id }} of {{ $labels.customer_name }} "
        "({{ $labels.source }}) failed {{ $value | humanizeDuration }} ago, and no later one "
        "has finished.",
    ),
    Alert(
        "SaaSBackupInstanceBackupStale",
        block(
            "(",
            f"  time() - {PER_INSTANCE} (saas_backup_instance_last_success_timestamp_seconds)",
            f"  > {INSTANCE_STALE_INTERVALS} * {PER_INSTANCE}"
            " (saas_backup_instance_backup_interval_seconds)",
            ")",
            NAMED,
        ),
        "1h",
        "warning",
        "A backup instance has not succeeded for "
        f"{NUMBERS.get(INSTANCE_STALE_INTERVALS, str(INSTANCE_STALE_INTERVALS))} "
        "of its scheduled intervals.",
        "Instance {{ $labels.instance_id }} of {{ $labels.customer_name }} "
        "({{ $labels.source }}) last backed up successfully {{ $value | humanizeDuration }} "
        f"ago, more than {INSTANCE_STALE_INTERVALS} times its backup interval of "
        + query_value(
            "max(saas_backup_instance_backup_interval_seconds"
            "{source=%q,customer_id=%q,instance_id=%q})",
            "source",
            "customer_id",
            "instance_id",
            pipe=" | humanizeDuration",
        )
        + ".",
        for_comment=(
            "An instance whose schedule is off has no interval series, so is never stale."
        ),
    ),
)

RESTORE_AND_CUSTOMER_ALERTS: Final = (
    Alert(
        "SaaSBackupRestoreFailed",
        block(
            f"({FAILED_RESTORE_AGE})",
            NAMED,
            "# A job whose customer the vendor lists nowhere else still alerts, by its id.",
            "or on (source, customer_id)",
            f"({FAILED_RESTORE_AGE})",
        ),
        "5m",
        "warning",
        "A restore or download job failed.",
        "The {{ $labels.type }} job {{ $labels.job_id }} of {{ $labels.customer_name }} "
        "({{ $labels.source }}) failed {{ $value | humanizeDuration }} ago.",
    ),
    Alert(
        "SaaSBackupRestoreStuck",
        block(
            f"({RUNNING_RESTORE_AGE})",
            NAMED,
            "or on (source, customer_id)",
            f"({RUNNING_RESTORE_AGE})",
        ),
        "30m",
        "warning",
        f"A restore or download job has been running for more than {RESTORE_STUCK_HOURS} hours.",
        "The {{ $labels.type }} job {{ $labels.job_id }} of {{ $labels.customer_name }} "
        "({{ $labels.source }}) has been running for {{ $value | humanizeDuration }}.",
    ),
    Alert(
        "SaaSBackupCustomerNotActive",
        'saas_backup_customer_info{status=~"inactive|suspended|cancelled|expired"} == 1',
        "1h",
        "warning",
        "A customer's domain is not active at the vendor.",
        "Customer {{ $labels.customer_name }} ({{ $labels.domain }}, {{ $labels.source }}) is "
        "{{ $labels.status }}: its data is not being backed up.",
    ),
    Alert(
        "SaaSBackupNewUnprotectedSeats",
        block(
            "(",
            '  sum by (source, customer_id) (saas_backup_seats{license_state="unlicensed"})',
            "  - sum by (source, customer_id) "
            '(saas_backup_seats{license_state="unlicensed"} offset 1d)',
            "  > 0",
            ")",
            NAMED,
        ),
        "1h",
        "info",
        "New seats are unlicensed, so not protected.",
        "{{ $labels.customer_name }} ({{ $labels.source }}) has {{ $value }} more unlicensed "
        "seats than a day ago: new users or mailboxes are not being backed up.",
    ),
)

GROUPS: Final = (
    Group(
        "saas-backup",
        (
            *RECORDS,
            *EXPORTER_ALERTS,
            *SEAT_ALERTS,
            *SERVICE_ALERTS,
            *BACKUP_ALERTS,
            *INSTANCE_ALERTS,
            *RESTORE_AND_CUSTOMER_ALERTS,
        ),
        comment=(
            "One group: recording rules are evaluated before the alerts that read them, in the "
            "same cycle, so every `for` starts counting when the data first shows the problem."
        ),
    ),
)
