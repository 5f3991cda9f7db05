"""The PromQL and template pieces the rules are built from.

Every alert about the exporter's data aggregates away the scrape `instance` first (`max without
(instance)`), so a pair of replicas scraping the same vendors is one series, never two; and keeps
`job`, so that Alertmanager's inhibitions can say `equal: [job, ...]`.
"""

from __future__ import annotations

from typing import Final

from alerts.thresholds import SCRAPE_GAP_MINUTES

NUMBERS: Final = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}

# One series per thing whichever replica (scrape target) reported it.
DEDUP: Final = "max without (instance)"
CUSTOMER: Final = "job, source, customer_id"
PER_CUSTOMER: Final = f"by ({CUSTOMER})"
PER_APPLICATION: Final = f"max by ({CUSTOMER}, application)"
PER_INSTANCE: Final = f"max by ({CUSTOMER}, instance_id)"
# A window that bridges a restart or a few failed scrapes, for alerts whose `for:` is long: a
# pending alert whose expression is empty for one evaluation starts its `for:` again.
GAP: Final = f"{SCRAPE_GAP_MINUTES}m"
KEEP_FIRING: Final = GAP

# Leaves out applications whose backups are switched off at the vendor (a paused or archived
# task): they are not expected to back up.
NOT_PAUSED: Final = (
    "unless on (source, customer_id, application) (saas_backup_application_enabled == 0)"
)
THRESHOLD: Final = "saas_backup_customer:threshold:seconds"
OVERRIDE: Final = "saas_backup_threshold_override_hours"


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


def over(threshold: str) -> str:
    """`> ` the customer's own threshold (its override, else the default), matched per
    customer; the left side keeps its labels."""
    return f'> on (source, customer_id) group_left () {THRESHOLD}{{threshold="{threshold}"}}'


def query_value(
    selector: str, *labels: str, pipe: str = "", missing: str = "?", show: str = "value"
) -> str:
    """A template printing the first result of `selector` (its value, or what `show` says,
    such as `label "customer_name"`), its %q verbs filled with the alert's labels (quoted as
    PromQL strings); `missing` if it finds nothing."""
    args = " ".join(f"$labels.{label}" for label in labels)
    return (
        f"{{{{ with printf `{selector}` {args} | query }}}}"
        f"{{{{ . | first | {show}{pipe} }}}}{{{{ else }}}}{missing}{{{{ end }}}}"
    )


def customer_name(window: str = "") -> str:
    """The customer's display name, looked up when the alert is evaluated rather than carried as
    a label, so a rename changes the text and never fires the alert again. `window`: look back
    this far (for a customer that is gone). Falls back to the id."""
    selector = "saas_backup_customer_info{source=%q,customer_id=%q}"
    if window:
        selector = f"last_over_time({selector}[{window}])"
    return query_value(
        selector,
        "source",
        "customer_id",
        show='label "customer_name"',
        missing="{{ $labels.customer_id }}",
    )


# "Acme Ltd (datto)": how every customer alert names its customer.
CUSTOMER_AT: Final = customer_name() + " ({{ $labels.source }})"


def threshold_hours(threshold: str) -> str:
    """The customer's threshold in hours, as the alert's template prints it."""
    return query_value(
        f'{THRESHOLD}{{threshold="{threshold}",source=%q,customer_id=%q}} / 3600',
        "source",
        "customer_id",
        pipe=' | printf "%.0f"',
    )
