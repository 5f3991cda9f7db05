"""Source states in, exposition bytes out: a pure function, sorted so the same input always
renders the same bytes.

The output is split in two: everything that changes only when a refresh completes
(``render_static``, cached by the server per generation), and the few values that change
with the clock (``render_dynamic``, a handful of lines per scrape).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as generate_text
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.cache import SourceState
from exporter.config import MetricsConfig
from exporter.model import Seat, Snapshot

Kind = Literal["gauge", "counter"]

CACHED: Final = " Served from the exporter's cache; see saas_backup_cache_age_seconds."


@dataclass(frozen=True, slots=True)
class Spec:
    kind: Kind
    help: str
    labels: tuple[str, ...]


CATALOGUE: Final[dict[str, Spec]] = {
    "saas_backup_exporter_build_info": Spec(
        "gauge", "Build information of the exporter; always 1.", ("version",)
    ),
    "saas_backup_up": Spec(
        "gauge",
        "1 if the source's last refresh succeeded, 0 if it failed or none has completed.",
        ("source",),
    ),
    "saas_backup_source_info": Spec(
        "gauge", "A configured source; always 1.", ("source", "provider")
    ),
    "saas_backup_last_refresh_success_timestamp_seconds": Spec(
        "gauge", "Unix time at which the source's last successful refresh completed.", ("source",)
    ),
    "saas_backup_refresh_duration_seconds": Spec(
        "gauge", "How long the source's last completed refresh took.", ("source",)
    ),
    "saas_backup_cache_age_seconds": Spec(
        "gauge",
        "Age of the oldest vendor response behind the source's served data.",
        ("source",),
    ),
    "saas_backup_api_requests": Spec(
        "counter",
        "Vendor API requests by endpoint and HTTP status code (timeout or error: no response).",
        ("source", "endpoint", "code"),
    ),
    "saas_backup_api_limit_remaining": Spec(
        "gauge", "Vendor rate budget left, as last reported by the vendor.", ("source",)
    ),
    "saas_backup_api_limit_reset_timestamp_seconds": Spec(
        "gauge",
        "Unix time at which the vendor's rate budget resets, as last reported.",
        ("source",),
    ),
    "saas_backup_api_limit_cost": Spec(
        "counter",
        "Vendor rate budget consumed, summed from the cost the vendor reports per request.",
        ("source", "endpoint"),
    ),
    "saas_backup_parse_errors": Spec(
        "counter",
        "Vendor values or records that could not be parsed and were dropped.",
        ("source",),
    ),
    "saas_backup_customer_info": Spec(
        "gauge",
        "A protected customer (tenant) and its display names; always 1." + CACHED,
        ("source", "customer_id", "customer_name", "domain", "product", "status"),
    ),
    "saas_backup_customer_up": Spec(
        "gauge",
        "1 if every read of this customer worked in the last refresh.",
        ("source", "customer_id"),
    ),
    "saas_backup_customer_seats_used": Spec(
        "gauge",
        "Seats in use as the vendor's customer list reports them." + CACHED,
        ("source", "customer_id"),
    ),
    "saas_backup_customer_services": Spec(
        "gauge",
        "Services of the customer by state, as the vendor's customer list reports them." + CACHED,
        ("source", "customer_id", "state"),
    ),
    "saas_backup_customer_backup_ratio": Spec(
        "gauge",
        "Share (0-1) of the customer's active services with a recent backup, per the vendor."
        + CACHED,
        ("source", "customer_id"),
    ),
    "saas_backup_seats": Spec(
        "gauge",
        "Seats by type and license state." + CACHED,
        ("source", "customer_id", "seat_type", "license_state"),
    ),
    "saas_backup_seats_never_backed_up": Spec(
        "gauge",
        "Seats the vendor reports as never backed up, by type and license state." + CACHED,
        ("source", "customer_id", "seat_type", "license_state"),
    ),
    "saas_backup_seat_last_backup_timestamp_seconds": Spec(
        "gauge",
        "Unix time of the seat's last backup." + CACHED,
        ("source", "customer_id", "seat_id", "seat_type", "license_state"),
    ),
    "saas_backup_seat_info": Spec(
        "gauge",
        "A seat's display name; always 1." + CACHED,
        ("source", "customer_id", "seat_id", "seat_name"),
    ),
    "saas_backup_seat_series_dropped": Spec(
        "gauge",
        "Seats left out of the per-seat series by metrics.max_seat_series; "
        "the most recently backed-up seats are left out first.",
        ("source",),
    ),
    "saas_backup_application_last_backup_timestamp_seconds": Spec(
        "gauge",
        "Unix time at which the application's newest finished backup ended." + CACHED,
        ("source", "customer_id", "application"),
    ),
    "saas_backup_application_last_backup_status": Spec(
        "gauge",
        "Status of the application's newest backup; always 1." + CACHED,
        ("source", "customer_id", "application", "status"),
    ),
    "saas_backup_application_services": Spec(
        "gauge",
        "Services of the application in its newest backup: active, backed_up, perfect." + CACHED,
        ("source", "customer_id", "application", "state"),
    ),
    "saas_backup_backup_instance_info": Spec(
        "gauge",
        "A backup instance (one protected workload) and its names; always 1." + CACHED,
        ("source", "customer_id", "instance_id", "instance_name", "definition"),
    ),
    "saas_backup_active_backup_start_timestamp_seconds": Spec(
        "gauge",
        "Unix time at which a backup still running started; one series per running backup."
        + CACHED,
        ("source", "customer_id", "instance_id"),
    ),
    "saas_backup_last_backup_end_timestamp_seconds": Spec(
        "gauge",
        "Unix time at which the instance's newest finished backup ended." + CACHED,
        ("source", "customer_id", "instance_id", "status"),
    ),
    "saas_backup_restore_jobs": Spec(
        "gauge",
        "Restore and download jobs started within the restore window, by status." + CACHED,
        ("source", "type", "status"),
    ),
    "saas_backup_restore_job_start_timestamp_seconds": Spec(
        "gauge",
        "Unix time at which a recent restore or download job started." + CACHED,
        ("source", "customer_id", "job_id", "type", "status"),
    ),
    "saas_backup_restore_job_end_timestamp_seconds": Spec(
        "gauge",
        "Unix time at which a recent restore or download job ended." + CACHED,
        ("source", "customer_id", "job_id", "type", "status"),
    ),
}

DYNAMIC: Final = frozenset({"saas_backup_cache_age_seconds"})


class _Rows:
    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[tuple[str, ...], float]]] = defaultdict(list)

    def add(self, name: str, value: float, *labels: str) -> None:
        spec = CATALOGUE[name]
        if len(labels) != len(spec.labels):
            raise ValueError(f"{name}: expected labels {spec.labels}, got {len(labels)}")
        self._rows[name].append((labels, float(value)))

    def families(self) -> list[Metric]:
        out = []
        for name in sorted(self._rows):
            spec = CATALOGUE[name]
            metric = Metric(name, spec.help, spec.kind)
            sample = f"{name}_total" if spec.kind == "counter" else name
            for labels, value in sorted(self._rows[name]):
                metric.add_sample(sample, dict(zip(spec.labels, labels, strict=True)), value)
            out.append(metric)
        return out


def _seat_order(seat: Seat) -> tuple[int, float, str, str]:
    # Keep the seats that matter most when capping: licensed ones first, oldest backup first.
    backup = seat.last_backup if seat.last_backup is not None else float("-inf")
    return (0 if seat.license_state == "licensed" else 1, backup, seat.customer_id, seat.id)


def _snapshot_rows(rows: _Rows, source: str, snap: Snapshot, config: MetricsConfig) -> None:
    for c in snap.customers:
        rows.add(
            "saas_backup_customer_info", 1, source, c.id, c.name, c.domain, c.product, c.status
        )
        rows.add("saas_backup_customer_up", 0 if c.id in snap.customer_errors else 1, source, c.id)
        if c.seats_used is not None:
            rows.add("saas_backup_customer_seats_used", c.seats_used, source, c.id)
        if c.services_active is not None:
            rows.add("saas_backup_customer_services", c.services_active, source, c.id, "active")
        if c.services_recently_backed_up is not None:
            rows.add(
                "saas_backup_customer_services",
                c.services_recently_backed_up,
                source,
                c.id,
                "backed_up_recently",
            )
        if c.backup_ratio is not None:
            rows.add("saas_backup_customer_backup_ratio", c.backup_ratio, source, c.id)

    counts: Counter[tuple[str, str, str]] = Counter()
    never: Counter[tuple[str, str, str]] = Counter()
    for seat in snap.seats:
        key = (seat.customer_id, seat.seat_type, seat.license_state)
        counts[key] += 1
        if seat.reports_backup_time and seat.last_backup is None:
            never[key] += 1
    for key, count in counts.items():
        rows.add("saas_backup_seats", count, source, *key)
    for key, count in never.items():
        rows.add("saas_backup_seats_never_backed_up", count, source, *key)

    if config.per_seat_series:
        ordered = sorted(snap.seats, key=_seat_order)
        kept = ordered[: config.max_seat_series]
        for seat in kept:
            rows.add("saas_backup_seat_info", 1, source, seat.customer_id, seat.id, seat.name)
            if seat.last_backup is not None:
                rows.add(
                    "saas_backup_seat_last_backup_timestamp_seconds",
                    seat.last_backup,
                    source,
                    seat.customer_id,
                    seat.id,
                    seat.seat_type,
                    seat.license_state,
                )
        rows.add("saas_backup_seat_series_dropped", len(ordered) - len(kept), source)

    for app in snap.applications:
        labels = (source, app.customer_id, app.application)
        if app.last_backup is not None:
            rows.add(
                "saas_backup_application_last_backup_timestamp_seconds", app.last_backup, *labels
            )
        rows.add("saas_backup_application_last_backup_status", 1, *labels, app.status)
        for state, value in (
            ("active", app.services_active),
            ("backed_up", app.services_backed_up),
            ("perfect", app.services_perfect),
        ):
            if value is not None:
                rows.add("saas_backup_application_services", value, *labels, state)


def _run_rows(rows: _Rows, source: str, snap: Snapshot) -> None:
    for inst in snap.instances:
        rows.add(
            "saas_backup_backup_instance_info",
            1,
            source,
            inst.customer_id,
            inst.instance_id,
            inst.name,
            inst.definition,
        )
    for run in snap.active_backups:
        if run.started is not None:
            rows.add(
                "saas_backup_active_backup_start_timestamp_seconds",
                run.started,
                source,
                run.customer_id,
                run.instance_id,
            )
    for run in snap.finished_backups:
        if run.ended is not None:
            rows.add(
                "saas_backup_last_backup_end_timestamp_seconds",
                run.ended,
                source,
                run.customer_id,
                run.instance_id,
                run.status,
            )
    jobs: Counter[tuple[str, str]] = Counter()
    for job in snap.restore_jobs:
        jobs[job.kind, job.status] += 1
        labels = (source, job.customer_id, job.job_id, job.kind, job.status)
        if job.started is not None:
            rows.add("saas_backup_restore_job_start_timestamp_seconds", job.started, *labels)
        if job.ended is not None:
            rows.add("saas_backup_restore_job_end_timestamp_seconds", job.ended, *labels)
    for (kind, status), count in jobs.items():
        rows.add("saas_backup_restore_jobs", count, source, kind, status)


def static_families(states: Sequence[SourceState], config: MetricsConfig) -> list[Metric]:
    rows = _Rows()
    rows.add("saas_backup_exporter_build_info", 1, __version__)
    for state in states:
        source = state.name
        rows.add("saas_backup_up", 1 if state.up else 0, source)
        rows.add("saas_backup_source_info", 1, source, state.provider)
        if state.last_success is not None:
            rows.add(
                "saas_backup_last_refresh_success_timestamp_seconds", state.last_success, source
            )
        if state.duration is not None:
            rows.add("saas_backup_refresh_duration_seconds", state.duration, source)
        stats = state.stats
        for (endpoint, code), count in stats.requests.items():
            rows.add("saas_backup_api_requests", count, source, endpoint, code)
        for endpoint, cost in stats.limit_cost.items():
            rows.add("saas_backup_api_limit_cost", cost, source, endpoint)
        if stats.limit_remaining is not None:
            rows.add("saas_backup_api_limit_remaining", stats.limit_remaining, source)
        if stats.limit_resets is not None:
            rows.add("saas_backup_api_limit_reset_timestamp_seconds", stats.limit_resets, source)
        rows.add("saas_backup_parse_errors", stats.parse_errors, source)
        if state.snapshot is not None:
            _snapshot_rows(rows, source, state.snapshot, config)
            _run_rows(rows, source, state.snapshot)
    return rows.families()


def dynamic_families(states: Sequence[SourceState], now: float) -> list[Metric]:
    rows = _Rows()
    for state in states:
        if state.snapshot is not None:
            age = max(now - state.snapshot.oldest_data, 0.0)
            rows.add("saas_backup_cache_age_seconds", age, state.name)
    return rows.families()


class _Fixed(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


OPENMETRICS_EOF: Final = b"# EOF\n"


def encode(families: Iterable[Metric], *, openmetrics: bool) -> bytes:
    """Encode families; an OpenMetrics body is left open (no ``# EOF``) so parts can be joined."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    if not openmetrics:
        return generate_text(registry)
    body: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return body.removesuffix(OPENMETRICS_EOF)


def render_static(
    states: Sequence[SourceState], config: MetricsConfig, *, openmetrics: bool
) -> bytes:
    return encode(static_families(states, config), openmetrics=openmetrics)


def render_dynamic(states: Sequence[SourceState], now: float, *, openmetrics: bool) -> bytes:
    return encode(dynamic_families(states, now), openmetrics=openmetrics)


def render(
    states: Sequence[SourceState], config: MetricsConfig, now: float, *, openmetrics: bool = False
) -> bytes:
    """The whole exposition document."""
    body = render_static(states, config, openmetrics=openmetrics)
    body += render_dynamic(states, now, openmetrics=openmetrics)
    return body + (OPENMETRICS_EOF if openmetrics else b"")
