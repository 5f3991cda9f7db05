"""Source states in, exposition bytes out: a pure function, sorted so the same input always
renders the same bytes.

The output is split in two: everything that changes only when a refresh completes
(``render_static``, cached by the server per generation), and the few values that change
with the clock (``render_dynamic``, a handful of lines per scrape). Metrics are addressed
through ``exporter.catalogue``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as generate_text
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter import __version__
from exporter import catalogue as m
from exporter.catalogue import MetricDef
from exporter.config import MetricsConfig
from exporter.model import Seat, Snapshot
from exporter.refresh import SourceState


class _Rows:
    def __init__(self) -> None:
        self._rows: defaultdict[MetricDef, list[tuple[tuple[str, ...], float]]] = defaultdict(list)

    def add(self, metric: MetricDef, value: float, **labels: str) -> None:
        self._rows[metric].append((metric.values(labels), float(value)))

    def families(self) -> list[Metric]:
        out = []
        for metric in sorted(self._rows, key=lambda d: d.name):
            family = Metric(metric.name, metric.help, metric.kind)
            sample = f"{metric.name}_total" if metric.kind == "counter" else metric.name
            for values, value in sorted(self._rows[metric]):
                family.add_sample(sample, dict(zip(metric.labels, values, strict=True)), value)
            out.append(family)
        return out


def _seat_order(seat: Seat) -> tuple[int, float, str, str]:
    # Keep the seats that matter most when capping: licensed ones first, oldest backup first.
    backup = seat.last_backup if seat.last_backup is not None else float("-inf")
    return (0 if seat.license_state == "licensed" else 1, backup, seat.customer_id, seat.id)


def _customer_rows(rows: _Rows, source: str, snap: Snapshot) -> None:
    for c in snap.customers:
        rows.add(
            m.CUSTOMER_INFO,
            1,
            source=source,
            customer_id=c.id,
            customer_name=c.name,
            domain=c.domain,
            product=c.product,
            status=c.status,
        )
        customer = {"source": source, "customer_id": c.id}
        rows.add(m.CUSTOMER_UP, 0 if c.id in snap.customer_errors else 1, **customer)
        if c.seats_used is not None:
            rows.add(m.CUSTOMER_SEATS_USED, c.seats_used, **customer)
        if c.services_active is not None:
            rows.add(m.CUSTOMER_SERVICES, c.services_active, **customer, state="active")
        if c.services_recently_backed_up is not None:
            rows.add(
                m.CUSTOMER_SERVICES,
                c.services_recently_backed_up,
                **customer,
                state="backed_up_recently",
            )
        if c.backup_ratio is not None:
            rows.add(m.CUSTOMER_BACKUP_RATIO, c.backup_ratio, **customer)
        if c.used_bytes is not None:
            rows.add(m.CUSTOMER_USED_BYTES, c.used_bytes, **customer)


def _seat_rows(rows: _Rows, source: str, snap: Snapshot, config: MetricsConfig) -> None:
    counts: Counter[tuple[str, str, str]] = Counter()
    never: Counter[tuple[str, str, str]] = Counter()
    # Only customers whose vendor says which seats it bills get the series (zero included).
    billable: dict[str, int] = {}
    for seat in snap.seats:
        key = (seat.customer_id, seat.seat_type, seat.license_state)
        counts[key] += 1
        if seat.reports_backup_time and seat.last_backup is None:
            never[key] += 1
        if seat.billable is not None:
            billable[seat.customer_id] = billable.get(seat.customer_id, 0) + seat.billable
    for customer_id, count in billable.items():
        rows.add(m.SEATS_BILLABLE, count, source=source, customer_id=customer_id)
    for metric, counted in ((m.SEATS, counts), (m.SEATS_NEVER_BACKED_UP, never)):
        for (customer_id, seat_type, license_state), count in counted.items():
            rows.add(
                metric,
                count,
                source=source,
                customer_id=customer_id,
                seat_type=seat_type,
                license_state=license_state,
            )

    if not config.per_seat_series:
        return
    ordered = sorted(snap.seats, key=_seat_order)
    kept = ordered[: config.max_seat_series]
    for seat in kept:
        rows.add(
            m.SEAT_INFO,
            1,
            source=source,
            customer_id=seat.customer_id,
            seat_id=seat.id,
            seat_name=seat.name,
        )
        if seat.last_backup is not None:
            rows.add(
                m.SEAT_LAST_BACKUP_TIMESTAMP_SECONDS,
                seat.last_backup,
                source=source,
                customer_id=seat.customer_id,
                seat_id=seat.id,
                seat_type=seat.seat_type,
                license_state=seat.license_state,
            )
    rows.add(m.SEAT_SERIES_DROPPED, len(ordered) - len(kept), source=source)


def _application_rows(rows: _Rows, source: str, snap: Snapshot) -> None:
    for app in snap.applications:
        labels = {"source": source, "customer_id": app.customer_id, "application": app.application}
        if app.last_backup is not None:
            rows.add(m.APPLICATION_LAST_BACKUP_TIMESTAMP_SECONDS, app.last_backup, **labels)
        rows.add(m.APPLICATION_LAST_BACKUP_STATUS, 1, **labels, status=app.status)
        for state, value in (
            ("active", app.services_active),
            ("backed_up", app.services_backed_up),
            ("perfect", app.services_perfect),
            ("uningested", app.services_uningested),
        ):
            if value is not None:
                rows.add(m.APPLICATION_SERVICES, value, **labels, state=state)
        for metric, amount in (
            (m.APPLICATION_LAST_FULLY_PROTECTED_TIMESTAMP_SECONDS, app.last_fully_protected),
            (m.APPLICATION_USED_BYTES, app.used_bytes),
            (m.APPLICATION_ENABLED, None if app.enabled is None else float(app.enabled)),
        ):
            if amount is not None:
                rows.add(metric, amount, **labels)


def _run_rows(rows: _Rows, source: str, snap: Snapshot) -> None:
    for inst in snap.instances:
        rows.add(
            m.BACKUP_INSTANCE_INFO,
            1,
            source=source,
            customer_id=inst.customer_id,
            instance_id=inst.instance_id,
            instance_name=inst.name,
            definition=inst.definition,
        )
        instance = {
            "source": source,
            "customer_id": inst.customer_id,
            "instance_id": inst.instance_id,
        }
        if inst.last_success is not None:
            rows.add(m.INSTANCE_LAST_SUCCESS_TIMESTAMP_SECONDS, inst.last_success, **instance)
        if inst.backup_interval is not None:
            rows.add(m.INSTANCE_BACKUP_INTERVAL_SECONDS, inst.backup_interval, **instance)
    for run in snap.active_backups:
        if run.started is not None:
            rows.add(
                m.ACTIVE_BACKUP_START_TIMESTAMP_SECONDS,
                run.started,
                source=source,
                customer_id=run.customer_id,
                instance_id=run.instance_id,
            )
    for run in snap.finished_backups:
        if run.ended is not None:
            rows.add(
                m.LAST_BACKUP_END_TIMESTAMP_SECONDS,
                run.ended,
                source=source,
                customer_id=run.customer_id,
                instance_id=run.instance_id,
                status=run.status,
            )
    jobs: Counter[tuple[str, str]] = Counter()
    for job in snap.restore_jobs:
        jobs[job.kind, job.status] += 1
        labels = {
            "source": source,
            "customer_id": job.customer_id,
            "job_id": job.job_id,
            "type": job.kind,
            "status": job.status,
        }
        if job.started is not None:
            rows.add(m.RESTORE_JOB_START_TIMESTAMP_SECONDS, job.started, **labels)
        if job.ended is not None:
            rows.add(m.RESTORE_JOB_END_TIMESTAMP_SECONDS, job.ended, **labels)
        records = {k: v for k, v in labels.items() if k != "status"}
        if job.records_processed is not None:
            rows.add(m.RESTORE_JOB_RECORDS_PROCESSED, job.records_processed, **records)
        if job.records_failed is not None:
            rows.add(m.RESTORE_JOB_RECORDS_FAILED, job.records_failed, **records)
    for (kind, status), count in jobs.items():
        rows.add(m.RESTORE_JOBS, count, source=source, type=kind, status=status)


def _source_rows(rows: _Rows, state: SourceState) -> None:
    source = state.name
    rows.add(m.UP, 1 if state.up else 0, source=source)
    rows.add(m.SOURCE_INFO, 1, source=source, provider=state.vendor)
    if state.last_success is not None:
        rows.add(m.LAST_REFRESH_SUCCESS_TIMESTAMP_SECONDS, state.last_success, source=source)
    if state.duration is not None:
        rows.add(m.REFRESH_DURATION_SECONDS, state.duration, source=source)
    stats = state.stats
    for (endpoint, code), count in stats.requests.items():
        rows.add(m.API_REQUESTS, count, source=source, endpoint=endpoint, code=code)
    for endpoint, cost in stats.limit_cost.items():
        rows.add(m.API_LIMIT_COST, cost, source=source, endpoint=endpoint)
    if stats.limit_remaining is not None:
        rows.add(m.API_LIMIT_REMAINING, stats.limit_remaining, source=source)
    if stats.limit_resets is not None:
        rows.add(m.API_LIMIT_RESET_TIMESTAMP_SECONDS, stats.limit_resets, source=source)
    rows.add(m.PARSE_ERRORS, stats.parse_errors, source=source)


def static_families(states: Sequence[SourceState], config: MetricsConfig) -> list[Metric]:
    rows = _Rows()
    rows.add(m.EXPORTER_BUILD_INFO, 1, version=__version__)
    for state in states:
        _source_rows(rows, state)
        if state.snapshot is not None:
            _customer_rows(rows, state.name, state.snapshot)
            _seat_rows(rows, state.name, state.snapshot, config)
            _application_rows(rows, state.name, state.snapshot)
            _run_rows(rows, state.name, state.snapshot)
    return rows.families()


def dynamic_families(states: Sequence[SourceState], now: float) -> list[Metric]:
    rows = _Rows()
    for state in states:
        if state.snapshot is not None:
            age = max(now - state.snapshot.oldest_data, 0.0)
            rows.add(m.CACHE_AGE_SECONDS, age, source=state.name)
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
