"""CloudAlly: which calls a refresh makes and what it remembers between refreshes.

A refresh reads ``/v1/partners/tasks`` through every page: it holds the restore and download
jobs, and in the live API the backup tasks as well. Backup tasks are taken from there when it
lists any, otherwise from the spec's ``/v1/backup-tasks``: one listing, never both, so that an
API offering both cannot count a task twice, and the live API is not asked for an endpoint it
lacks. A 404 from either listing (or from ``/v1/partners/status``) means "not offered here": an
empty listing, not a failed source. Live tasks take their last status from
``/v1/partners/status``; the status of each recent job comes from ``/v1/restore/{jobId}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from exporter.http import (
    ApiStats,
    BearerAuth,
    Token,
    TokenCache,
    VendorClient,
    VendorError,
)
from exporter.model import (
    TERMINAL_STATUSES,
    UNKNOWN,
    ApplicationBackup,
    Customer,
    RestoreJob,
    Snapshot,
)
from exporter.parsing import Problems, first_by_id, items_of, parse_records
from exporter.source import Listing, Part, Reading, Store, read_root
from exporter.vendors.cloudally.parse import (
    JobRecord,
    JobStatusRecord,
    Statuses,
    TaskRecord,
    application_names,
    job_kind,
    live_status,
    outcome_status,
    product,
    spec_status,
    split_partner_tasks,
    statuses_from,
    task_enabled,
    token_from,
)
from exporter.vendors.cloudally.settings import CloudAllySettings

logger = logging.getLogger(__name__)

R = TypeVar("R", TaskRecord, JobRecord)


@dataclass(frozen=True, slots=True)
class PartnerTasks:
    backups: list[TaskRecord]
    jobs: list[JobRecord]


def _distinct(records: list[R]) -> list[R]:
    return first_by_id(records, lambda r: r.id)


def _not_found(exc: VendorError) -> bool:
    return exc.status == 404


def _next_page(body: dict[str, Any]) -> tuple[str | None, int | None]:
    """The next page's token, or its number. The gem reads ``nextPageToken``; another client
    ``nextPage``, which might equally hold a page number."""
    for key in ("nextPageToken", "nextPage"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value, None
        if isinstance(value, int) and not isinstance(value, bool):
            return None, value
    return None, None


class CloudAllySource:
    vendor = "cloudally"

    def __init__(
        self,
        settings: CloudAllySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = settings.name
        self.stats = ApiStats()
        self._settings = settings
        self._clock = clock
        # Terminal jobs cannot change: remembered, never asked about again.
        self._finished_jobs: dict[str, RestoreJob] = {}
        self.tokens = TokenCache(self._fetch_token, settings.token_margin_seconds)
        headers = None
        if settings.auth_style == "headers":
            # Live clients send the client headers on every call, not only at login, and the
            # live API refuses data calls without them.
            secret = settings.secret("client_secret")
            headers = {"client-id": settings.client_id, "client-secret": secret}
        self._client = VendorClient.for_source(
            settings,
            auth=BearerAuth(self.tokens),
            stats=self.stats,
            transport=transport,
            headers=headers,
        )
        self.pacer = self._client.pacer

    async def aclose(self) -> None:
        await self._client.aclose()

    def _problems(self) -> Problems:
        return Problems(self.stats, self._clock())

    async def _fetch_token(self, previous: Token | None) -> Token:
        if previous is not None and previous.refresh:
            try:
                reply = await self._client.request(
                    "token",
                    "POST",
                    "/auth/refresh",
                    json={"refreshToken": previous.refresh},
                    authenticated=False,
                )
                return token_from(reply.body, "POST /auth/refresh", self._problems())
            except VendorError as exc:
                logger.info("msg=%s reason=%s", "token refresh failed, logging in again", exc)
        return await self._login()

    async def _login(self) -> Token:
        settings = self._settings
        body: dict[str, str]
        if settings.auth_style == "headers":
            # The client headers are the client's defaults (see __init__).
            body = {}
            if settings.email:
                body["email"] = settings.email
            if settings.password is not None:
                body["password"] = settings.password.get_secret_value()
        else:
            body = {
                "clientId": settings.client_id,
                "clientSecret": settings.secret("client_secret"),
            }
        reply = await self._client.request(
            "token", "POST", "/auth/partner", json=body, authenticated=False
        )
        return token_from(reply.body, "POST /auth/partner", self._problems())

    async def _pages(self, endpoint: str, path: str) -> list[Any] | None:
        """Every item of a paged listing, up to ``max_pages``; None if the API answers 404
        (it has no such listing). Stops when no next token comes back or ``page`` has reached
        ``totalPages``; a token or page met before is a cycle, counted as a parse error and
        not read twice."""
        items: list[Any] = []
        page, token = 1, None
        tokens: set[str] = set()
        numbers: set[int] = set()
        for _ in range(self._settings.max_pages):
            params: dict[str, str | int] = {"page": page, "pageSize": self._settings.page_size}
            if token:
                params["nextPageToken"] = token
            try:
                reply = await self._client.request(endpoint, "GET", path, params=params)
            except VendorError as exc:
                if not items and _not_found(exc):
                    return None
                raise
            body = reply.body if isinstance(reply.body, dict) else {}
            number = body.get("page")
            number = number if isinstance(number, int) else page
            if number in numbers:
                return self._cycle(endpoint, items)
            numbers.add(number)
            items.extend(items_of(reply.body, "data", self._problems(), endpoint))
            total = body.get("totalPages")
            token, next_number = _next_page(body)
            if token is None and next_number is None:
                return items
            if isinstance(total, int) and number >= total:
                return items
            if token is not None and token in tokens:
                return self._cycle(endpoint, items)
            if token is not None:
                tokens.add(token)
            page = next_number if next_number is not None else number + 1
        logger.warning(
            "msg=%s endpoint=%s pages=%s",
            "stopped at the page limit",
            endpoint,
            self._settings.max_pages,
        )
        return items

    def _cycle(self, endpoint: str, items: list[Any]) -> list[Any]:
        logger.warning("msg=%s endpoint=%s", "page tokens form a cycle", endpoint)
        self.stats.parse_errors += 1
        return items

    async def _load_partner_tasks(self) -> PartnerTasks:
        items = await self._pages("partner_tasks", "/v1/partners/tasks")
        if items is None:
            return PartnerTasks([], [])
        backups, jobs = split_partner_tasks(items, self._problems())
        # A task or job listed twice (pages that overlap) is one: never two series.
        return PartnerTasks(_distinct(backups), _distinct(jobs))

    async def _load_backup_tasks(self) -> list[TaskRecord]:
        items = await self._pages("backup_tasks", "/v1/backup-tasks")
        records = parse_records(
            items or [], TaskRecord, self._problems(), "backup-tasks", lambda r: bool(r.id)
        )
        return _distinct(records)

    async def _load_statuses(self) -> Statuses:
        items = await self._pages("partner_status", "/v1/partners/status")
        if items is None:
            logger.debug("msg=%s", "no /v1/partners/status here: live task statuses unknown")
            return Statuses(False, {}, {})
        return statuses_from(items, self._problems())

    async def _load_job_status(self, job_id: str) -> JobStatusRecord:
        reply = await self._client.request(
            "restore_status", "GET", f"/v1/restore/{quote(job_id, safe='')}"
        )
        body = reply.body
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]
        # parse_records counts a body that is not a record.
        records = parse_records([body], JobStatusRecord, self._problems(), "restore")
        if not records:
            raise VendorError(f"GET /v1/restore/{job_id}: unexpected response shape")
        return records[0]

    async def _job(self, reading: Reading, record: JobRecord) -> RestoreJob:
        assert record.id is not None
        job_id = record.id
        done = self._finished_jobs.get(job_id)
        if done is not None:
            return done
        customer = record.customer_id or UNKNOWN
        kind = job_kind(record.kind) or UNKNOWN
        got = await reading.fetch(
            f"restore {job_id}", "restore_status", job_id, lambda: self._load_job_status(job_id)
        )
        if got is None:
            return RestoreJob(job_id, customer, kind, UNKNOWN, record.created, None)
        status = got.value
        job = RestoreJob(
            job_id,
            customer,
            kind,
            outcome_status(status.status),
            status.started or record.created,
            status.ended,
        )
        if job.status in TERMINAL_STATUSES:
            self._finished_jobs[job_id] = job
        return job

    async def listing(self, store: Store) -> Listing[_Unit]:
        partner, reading = await read_root(
            store, "partner tasks", "partner_tasks", self._load_partner_tasks
        )
        live = bool(partner.backups)
        if live:
            tasks = partner.backups
        else:
            spec = await reading.fetch_required(
                "backup tasks", "backup_tasks", "", self._load_backup_tasks
            )
            tasks = spec.value
        statuses: Statuses | None = None
        status_error: str | None = None
        if live:
            # Its failure is every customer's problem, not the customer list's.
            status_reading = Reading(store)
            got = await status_reading.fetch(
                "partners/status", "partner_status", "", self._load_statuses
            )
            reading.merge_timing(status_reading)
            statuses = got.value if got is not None else None
            status_error = status_reading.error
        recent = self._recent_jobs(partner.jobs)
        store.retain("restore_status", {j.id for j in recent if j.id is not None})

        names = application_names(tasks)
        units: dict[str, _Unit] = {}

        def unit(customer_id: str) -> _Unit:
            return units.setdefault(customer_id, _Unit(customer_id))

        for task in tasks:
            assert task.id is not None
            entry = unit(task.customer_id or UNKNOWN)
            if entry.customer is None or entry.customer.product == UNKNOWN:
                entry.customer = Customer(
                    entry.customer_id,
                    task.customer_name or entry.customer_id,
                    task.domain or "",
                    product(task.service),
                    UNKNOWN,
                )
            entry.applications.append(_application(task, names[task.id], statuses, live))
            if live and statuses is None:
                # Without it no task's outcome is known: statuses stay unknown, never success.
                entry.problem = status_error or "partners/status"
        for job in recent:
            unit(job.customer_id or UNKNOWN).jobs.append(job)
        return reading.listing(
            units, {cid: u.customer.name if u.customer else None for cid, u in units.items()}
        )

    def _recent_jobs(self, jobs: list[JobRecord]) -> list[JobRecord]:
        """The jobs created within the restore window; finished ones older than that are
        forgotten."""
        window_start = self._clock() - self._settings.restore_window_seconds
        recent = [j for j in jobs if j.created is None or j.created >= window_start]
        recent_ids = {j.id for j in recent if j.id is not None}
        for job_id in [k for k in self._finished_jobs if k not in recent_ids]:
            del self._finished_jobs[job_id]
        return recent

    async def read(self, store: Store, customer_id: str, unit: _Unit) -> Part:
        reading = Reading(store)
        if unit.problem:
            reading.note(unit.problem)
        window_start = self._clock() - self._settings.restore_window_seconds
        jobs = await asyncio.gather(*(self._job(reading, j) for j in unit.jobs))
        records = Snapshot(
            customers=(unit.customer,) if unit.customer is not None else (),
            applications=tuple(unit.applications),
            restore_jobs=tuple(j for j in jobs if j.started is None or j.started >= window_start),
        )
        return reading.part(customer_id, records)


@dataclass(eq=False)
class _Unit:
    """One customer as the task listing describes it. Its repr (the crawl's fingerprint of
    it) lists exactly what a read of it depends on."""

    customer_id: str
    customer: Customer | None = None
    applications: list[ApplicationBackup] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)
    problem: str | None = None


def _application(
    task: TaskRecord, name: str, statuses: Statuses | None, live: bool
) -> ApplicationBackup:
    last = task.newest_backup()
    if live:
        outcome = statuses.of(task) if statuses is not None else None
        if last is None and outcome is not None:
            last = outcome.last_backup
        status, enabled = live_status(task, statuses), task_enabled(task.status)
    else:
        status, enabled = spec_status(task)
    return ApplicationBackup(
        task.customer_id or UNKNOWN,
        name,
        last,
        status,
        used_bytes=task.size,
        enabled=enabled,
        next_backup=task.next_backup,
        progress=task.progress_state,
    )
