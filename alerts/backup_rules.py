"""The alerts about backups and restores themselves (alerts/rules.py gathers them)."""

from __future__ import annotations

from typing import Final

from alerts.customer_rules import BACKUPS_FAILED, NEWEST_BACKUP
from alerts.exprs import (
    CUSTOMER,
    CUSTOMER_AT,
    DEDUP,
    GAP,
    KEEP_FIRING,
    NOT_PAUSED,
    PER_CUSTOMER,
    PER_INSTANCE,
    block,
    over,
    query_value,
    seconds,
    spelled,
    threshold_hours,
)
from alerts.model import Alert
from alerts.thresholds import (
    BACKUP_TOO_LONG_HOURS,
    BACKUPS_FAILING_HOURS,
    INSTANCE_STALE_INTERVALS,
    PARTIAL_BACKUP_HOURS,
    RESTORE_FAILED_WITHIN_HOURS,
    RESTORE_PENDING_HOURS,
    RESTORE_STUCK_HOURS,
    SEAT_FIRST_BACKUP_GRACE_HOURS,
)

RESTORE_START: Final = "saas_backup_restore_job_start_timestamp_seconds"
# The last success as the vendor states it, else the end of its newest successful backup (the
# spec shape of Backupify gives only that).
LAST_SUCCESS: Final = (
    '{__name__="saas_backup_instance_last_success_timestamp_seconds"}'
    ' or saas_backup_last_backup_end_timestamp_seconds{status="success"}'
)

BACKUP_ALERTS: Final = (
    Alert(
        "SaaSBackupCustomerBackupsFailing",
        f"max_over_time({BACKUPS_FAILED}[{GAP}]) > 0",
        f"{BACKUPS_FAILING_HOURS}h",
        "critical",
        f"A customer's backups have been failing for {spelled(BACKUPS_FAILING_HOURS)}.",
        f"The newest backups of {{{{ $value }}}} applications or instances of {CUSTOMER_AT} "
        f"have failed for {spelled(BACKUPS_FAILING_HOURS)} without a later success. Open a "
        "vendor ticket now: that customer's data is not being protected.",
        for_comment=(
            f"Failing for {spelled(BACKUPS_FAILING_HOURS)} pages; the failure itself is a "
            f"ticket (the two alerts below). The {GAP} window bridges a restart, which would "
            "otherwise start the count again."
        ),
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupApplicationBackupFailed",
        block(
            f"count {PER_CUSTOMER} (",
            f'  {DEDUP} (saas_backup_application_last_backup_status{{status="failed"}})',
            f"  {NOT_PAUSED}",
            ")",
        ),
        "2h",
        "warning",
        "An application's newest backup failed.",
        f"The newest backup of {{{{ $value }}}} applications of {CUSTOMER_AT} failed, and no "
        "later one has succeeded for 2 hours. Check the vendor's backup log for the reason.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupInstanceBackupFailed",
        block(
            "time() - "
            f'{PER_INSTANCE} (saas_backup_last_backup_end_timestamp_seconds{{status="failed"}})',
        ),
        "2h",
        "warning",
        "A backup instance's newest backup failed.",
        "The newest backup of instance {{ $labels.instance_id }} of "
        f"{CUSTOMER_AT} failed {{{{ $value | humanizeDuration }}}} ago, and no later one has "
        "finished. Check the vendor's backup log for the reason.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupBackupPartial",
        block(
            f"count {PER_CUSTOMER} (",
            f"  {DEDUP} (max_over_time({NEWEST_BACKUP.format('partial')}[{GAP}]))",
            f"  {NOT_PAUSED}",
            ")",
        ),
        f"{PARTIAL_BACKUP_HOURS}h",
        "warning",
        "Backups have only partly succeeded for a day.",
        f"The newest backups of {{{{ $value }}}} applications or instances of {CUSTOMER_AT} "
        f"have completed with errors for {spelled(PARTIAL_BACKUP_HOURS)}: some items are not "
        "protected. Check the vendor's backup log, which lists them.",
        for_comment="One partial backup is routine; a day of them is not.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupFirstBackupNotFinished",
        block(
            f"count {PER_CUSTOMER} (",
            "  # Instances the vendor lists with no finished backup at all ...",
            f"  group by ({CUSTOMER}, instance_id) ("
            "max_over_time(saas_backup_backup_instance_info" + f"[{GAP}]))",
            "  unless on (source, customer_id, instance_id) (",
            f"    max_over_time(saas_backup_last_backup_end_timestamp_seconds[{GAP}])",
            f"    or max_over_time(saas_backup_instance_last_success_timestamp_seconds[{GAP}])",
            "  )",
            "  # ... and applications whose newest backup is still to come and none ever",
            "  # finished (their labels differ, so `or` keeps both).",
            "  or (",
            f"    group by ({CUSTOMER}, application) (max_over_time("
            f'saas_backup_application_last_backup_status{{status=~"pending|running"}}[{GAP}]))',
            "    unless on (source, customer_id, application)",
            f"      max_over_time(saas_backup_application_last_backup_timestamp_seconds[{GAP}])",
            f"    {NOT_PAUSED}",
            "  )",
            ")",
        ),
        f"{SEAT_FIRST_BACKUP_GRACE_HOURS}h",
        "warning",
        "A first backup has not finished.",
        f"{{{{ $value }}}} applications or backup instances of {CUSTOMER_AT} have not finished "
        f"a first backup in {spelled(SEAT_FIRST_BACKUP_GRACE_HOURS)}. Check the new tenant's "
        "consent and connection in the vendor's portal.",
        for_comment="A new tenant's first backup can take a day.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupApplicationBackupStale",
        block(
            f"count {PER_CUSTOMER} (",
            "  (",
            f"    {DEDUP} (time() - saas_backup_application_last_backup_timestamp_seconds)",
            f"    {over('application_stale')}",
            "  )",
            f"  {NOT_PAUSED}",
            ")",
        ),
        "1h",
        "warning",
        "An application has not been backed up for days.",
        f"{{{{ $value }}}} applications of {CUSTOMER_AT} have not finished a backup for more "
        f"than {threshold_hours('application_stale')} hours. Check the tasks in the vendor's "
        "portal.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupRunningTooLong",
        "time() - "
        f"{PER_INSTANCE} (saas_backup_active_backup_start_timestamp_seconds)"
        f" > {seconds(BACKUP_TOO_LONG_HOURS)}",
        "30m",
        "warning",
        f"A backup has been running for more than {BACKUP_TOO_LONG_HOURS} hours.",
        "The backup of instance {{ $labels.instance_id }} of "
        f"{CUSTOMER_AT} has been running for {{{{ $value | humanizeDuration }}}}. Ask the "
        "vendor whether it is stuck.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupInstanceBackupStale",
        block(
            "(",
            f"  time() - {PER_INSTANCE} ({LAST_SUCCESS})",
            f"  > {INSTANCE_STALE_INTERVALS} * {PER_INSTANCE}"
            " (saas_backup_instance_backup_interval_seconds)",
            ")",
            "# Where the vendor gives neither a schedule nor a last success (one vendor's spec",
            "# shape), the customer's application_stale threshold.",
            "or (",
            f"  time() - {PER_INSTANCE} "
            '(saas_backup_last_backup_end_timestamp_seconds{status="success"})',
            f"  {over('application_stale')}",
            "  unless on (source, customer_id, instance_id) ("
            "saas_backup_instance_backup_interval_seconds",
            "    or saas_backup_instance_last_success_timestamp_seconds)",
            ")",
        ),
        "1h",
        "warning",
        "A backup instance has not succeeded for longer than its schedule allows.",
        f"Instance {{{{ $labels.instance_id }}}} of {CUSTOMER_AT} last backed up successfully "
        "{{ $value | humanizeDuration }} ago, more than "
        f"{INSTANCE_STALE_INTERVALS} times its backup interval of "
        + query_value(
            "max(saas_backup_instance_backup_interval_seconds"
            "{source=%q,customer_id=%q,instance_id=%q})",
            "source",
            "customer_id",
            "instance_id",
            pipe=" | humanizeDuration",
            missing=f"(none given: {threshold_hours('application_stale')} hours)",
        )
        + ". Check the instance in the vendor's console.",
        for_comment=(
            "An instance whose schedule is off has no interval series (but a last success), so "
            "is never stale."
        ),
        keep_firing_for=KEEP_FIRING,
    ),
)

RESTORE_ALERTS: Final = (
    Alert(
        "SaaSBackupRestoreFailed",
        "time() - "
        f'{DEDUP} (saas_backup_restore_job_end_timestamp_seconds{{status="failed"}})'
        f" < {seconds(RESTORE_FAILED_WITHIN_HOURS)}",
        "5m",
        "warning",
        "A restore or download job failed.",
        "The {{ $labels.type }} job {{ $labels.job_id }} of "
        f"{CUSTOMER_AT} failed {{{{ $value | humanizeDuration }}}} ago. Tell whoever asked "
        "for it, and run it again or ask the vendor why.",
        for_comment=f"It resolves once the failure is {RESTORE_FAILED_WITHIN_HOURS} hours old.",
    ),
    Alert(
        "SaaSBackupRestoreStuck",
        f'time() - {DEDUP} ({RESTORE_START}{{status="running"}}) > {seconds(RESTORE_STUCK_HOURS)}',
        "30m",
        "warning",
        f"A restore or download job has been running for more than {RESTORE_STUCK_HOURS} hours.",
        "The {{ $labels.type }} job {{ $labels.job_id }} of "
        f"{CUSTOMER_AT} has been running for {{{{ $value | humanizeDuration }}}}. Ask the "
        "vendor whether it is stuck.",
        keep_firing_for=KEEP_FIRING,
    ),
    Alert(
        "SaaSBackupRestorePending",
        f'time() - {DEDUP} ({RESTORE_START}{{status="pending"}})'
        f" > {seconds(RESTORE_PENDING_HOURS)}",
        "30m",
        "warning",
        f"A restore or download job has waited more than {spelled(RESTORE_PENDING_HOURS)} to "
        "start.",
        "The {{ $labels.type }} job {{ $labels.job_id }} of "
        f"{CUSTOMER_AT} was requested {{{{ $value | humanizeDuration }}}} ago and has not "
        "started. Ask the vendor about its restore queue.",
        keep_firing_for=KEEP_FIRING,
    ),
)
