"""Source states in, exposition bytes out: pure functions, sorted so the same input always
renders the same bytes.

The document has two parts. The static part holds the records: it changes only when a
customer's part does, and the server assembles it from per-customer chunks (``exporter.chunks``)
so an unchanged customer is never rendered again. The dynamic tail (``render_dynamic``) holds
everything read live on every scrape: the source's state, its API counters, crawl and budget
gauges, and the ages that move with the clock. ``render`` builds the whole document in one go;
it is the reference the cached path must match byte for byte. Metrics are addressed through
``exporter.catalogue``.
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
from exporter.model import Seat, Snapshot, valid_text
from exporter.refresh import SourceState
from exporter.source import Part

# The per-seat series: in customer chunks, unless a source's seats exceed
# metrics.max_seat_series and the kept ones are chosen across all its customers.
PER_SEAT: Final = frozenset({m.SEAT_INFO, m.SEAT_LAST_BACKUP_TIMESTAMP_SECONDS})


class Rows:
    def __init__(self) -> None:
        self._rows: defaultdict[MetricDef, list[tuple[tuple[str, ...], float]]] = defaultdict(list)

    def add(self, metric: MetricDef, value: float, **labels: str) -> None:
        # Sources clean vendor text already; this is the last guard, since one label the
        # encoder cannot write would fail every source's scrape.
        values = tuple(valid_text(v) for v in metric.values(labels))
        self._rows[metric].append((values, float(value)))

    def families(self) -> list[tuple[MetricDef, Metric]]:
        """Each metric with rows and its family, by name; samples sorted by label values."""
        out = []
        for metric in sorted(self._rows, key=lambda d: d.name):
            family = Metric(metric.name, metric.help, metric.kind)
            sample = f"{metric.name}_total" if metric.kind == "counter" else metric.name
            for values, value in sorted(self._rows[metric]):
                family.add_sample(sample, dict(zip(metric.labels, values, strict=True)), value)
            out.append((metric, family))
        return out


def _seat_order(seat: Seat) -> tuple[int, float, str, str]:
    # Keep the seats that matter most when capping: licensed ones first, oldest backup first.
    backup = seat.last_backup if seat.last_backup is not None else float("-inf")
    return (0 if seat.license_state == "licensed" else 1, backup, seat.customer_id, seat.id)


def has_data(state: SourceState) -> bool:
    """Whether the source serves records (none at all is data too, once it has listed)."""
    return bool(state.parts) or state.listed


def oldest_data(state: SourceState) -> float:
    # SourceState.snapshot's oldest_data, without merging every record on every scrape.
    return min((p.oldest for p in state.parts.values()), default=state.last_success or 0.0)


def seat_count(state: SourceState) -> int:
    return sum(len(p.records.seats) for p in state.parts.values())


def capped(state: SourceState, config: MetricsConfig) -> bool:
    """Whether the source's per-seat series are chosen across its customers."""
    return config.per_seat_series and seat_count(state) > config.max_seat_series


def _customer_rows(rows: Rows, source: str, part: Part) -> None:
    customer = {"source": source, "customer_id": part.customer_id}
    rows.add(m.CUSTOMER_UP, 0 if part.error else 1, **customer)
    for c in part.records.customers:
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


ZERO_STATES: Final = ("licensed", "unlicensed")


def _seat_count_rows(rows: Rows, source: str, seats: Iterable[Seat]) -> None:
    counts: Counter[tuple[str, str, str]] = Counter()
    never: Counter[tuple[str, str, str]] = Counter()
    # Only customers whose vendor says which seats it bills get the series (zero included).
    billable: dict[str, int] = {}
    for seat in seats:
        # Every seat type a customer has counts its licensed and unlicensed seats, zero
        # included: an alert on 0 -> N unlicensed seats needs the 0.
        for state in ZERO_STATES:
            counts[seat.customer_id, seat.seat_type, state] += 0
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


def _per_seat_rows(rows: Rows, source: str, seats: Iterable[Seat]) -> None:
    for seat in seats:
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


def _application_rows(rows: Rows, source: str, snap: Snapshot) -> None:
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


def _run_rows(rows: Rows, source: str, snap: Snapshot) -> None:
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
    for job in snap.restore_jobs:
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


def part_rows(rows: Rows, source: str, part: Part, *, per_seat: bool) -> None:
    """One customer's rows: every sample's first labels are its source and customer_id."""
    _customer_rows(rows, source, part)
    _seat_count_rows(rows, source, part.records.seats)
    if per_seat:
        _per_seat_rows(rows, source, part.records.seats)
    _application_rows(rows, source, part.records)
    _run_rows(rows, source, part.records)


def exporter_rows(rows: Rows) -> None:
    rows.add(m.EXPORTER_BUILD_INFO, 1, version=__version__)


def source_rows(rows: Rows, state: SourceState, config: MetricsConfig) -> None:
    """The static rows that span a source's customers, including its per-seat series when they
    are capped."""
    if not has_data(state):
        return
    source = state.name
    jobs: Counter[tuple[str, str]] = Counter(
        (job.kind, job.status) for p in state.parts.values() for job in p.records.restore_jobs
    )
    for (kind, status), count in jobs.items():
        rows.add(m.RESTORE_JOBS, count, source=source, type=kind, status=status)
    if not config.per_seat_series:
        return
    seats = seat_count(state)
    if seats > config.max_seat_series:
        every = (seat for p in state.parts.values() for seat in p.records.seats)
        _per_seat_rows(rows, source, sorted(every, key=_seat_order)[: config.max_seat_series])
    rows.add(m.SEAT_SERIES_DROPPED, max(seats - config.max_seat_series, 0), source=source)


def static_families(states: Sequence[SourceState], config: MetricsConfig) -> list[Metric]:
    rows = Rows()
    exporter_rows(rows)
    for state in states:
        source_rows(rows, state, config)
        per_seat = config.per_seat_series and not capped(state, config)
        for part in state.parts.values():
            part_rows(rows, state.name, part, per_seat=per_seat)
    return [family for _, family in rows.families()]


def _crawl_rows(rows: Rows, state: SourceState) -> None:
    source, crawl = state.name, state.crawl
    if state.listed_customers is not None:
        rows.add(m.SOURCE_CUSTOMERS, state.listed_customers, source=source)
    rows.add(m.CRAWL_RUNNING, 1 if crawl.running else 0, source=source)
    rows.add(m.CRAWL_PROGRESS, crawl.progress, source=source)
    pending = max(crawl.total - crawl.read - crawl.failed, 0)
    for name, count in (("read", crawl.read), ("failed", crawl.failed), ("pending", pending)):
        rows.add(m.CRAWL_CUSTOMERS, count, source=source, state=name)
    if crawl.last_progress is not None:
        rows.add(m.CRAWL_LAST_PROGRESS_TIMESTAMP_SECONDS, crawl.last_progress, source=source)
    budget = state.budget
    if budget is None:
        return
    for metric, amount in (
        (m.API_BUDGET_REMAINING_CALLS, budget.remaining),
        (m.API_BUDGET_ALLOWED_CALLS_PER_HOUR, budget.allowed_per_hour),
        (m.API_BUDGET_PLANNED_CALLS_PER_HOUR, budget.planned_per_hour),
        (m.API_BUDGET_FLEET_COVER_SECONDS, budget.cover_seconds),
    ):
        if amount is not None:
            rows.add(metric, amount, source=source)


def _source_state_rows(rows: Rows, state: SourceState) -> None:
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


def source_dynamic_rows(rows: Rows, state: SourceState, now: float) -> None:
    """The source's live rows, but for its customers' data ages."""
    _source_state_rows(rows, state)
    _crawl_rows(rows, state)
    if has_data(state):
        rows.add(m.CACHE_AGE_SECONDS, max(now - oldest_data(state), 0.0), source=state.name)


def dynamic_families(states: Sequence[SourceState], now: float) -> list[Metric]:
    rows = Rows()
    for state in states:
        source_dynamic_rows(rows, state, now)
        for part in state.parts.values():
            rows.add(
                m.CUSTOMER_DATA_AGE_SECONDS,
                max(now - part.oldest, 0.0),
                source=state.name,
                customer_id=part.customer_id,
            )
    return [family for _, family in rows.families()]


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
