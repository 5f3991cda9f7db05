"""CloudAlly: which calls a refresh makes (backup tasks, partner tasks, the status of each recent
restore or download job) and what it remembers between refreshes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from exporter.http import (
    ApiStats,
    BearerAuth,
    Token,
    TokenCache,
    VendorClient,
    VendorError,
    list_items,
)
from exporter.model import (
    TERMINAL_STATUSES,
    UNKNOWN,
    ApplicationBackup,
    Customer,
    RestoreJob,
    Snapshot,
    backup_status,
)
from exporter.parsing import Problems, parse_records
from exporter.source import Reading, Store
from exporter.vendors.cloudally.parse import (
    JobRecord,
    JobStatusRecord,
    TaskRecord,
    application_names,
    job_kind,
    product,
    token_from,
)
from exporter.vendors.cloudally.settings import CloudAllySettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _JobData:
    job: RestoreJob | None
    error: str | None


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
        self._limit = asyncio.Semaphore(settings.max_concurrency)
        # Terminal jobs cannot change: remembered, never asked about again.
        self._finished_jobs: dict[str, RestoreJob] = {}
        self.tokens = TokenCache(self._fetch_token, settings.token_margin_seconds)
        self._client = VendorClient.for_source(
            settings, auth=BearerAuth(self.tokens), stats=self.stats, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

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
                return token_from(reply.body, "POST /auth/refresh")
            except VendorError as exc:
                logger.info("msg=%s reason=%s", "token refresh failed, logging in again", exc)
        return await self._login()

    async def _login(self) -> Token:
        settings = self._settings
        secret = settings.secret("client_secret")
        headers = None
        body: dict[str, str]
        if settings.auth_style == "headers":
            headers = {"client-id": settings.client_id, "client-secret": secret}
            body = {}
            if settings.email:
                body["email"] = settings.email
            if settings.password is not None:
                body["password"] = settings.password.get_secret_value()
        else:
            body = {"clientId": settings.client_id, "clientSecret": secret}
        reply = await self._client.request(
            "token", "POST", "/auth/partner", json=body, headers=headers, authenticated=False
        )
        return token_from(reply.body, "POST /auth/partner")

    async def _load_tasks(self) -> list[TaskRecord]:
        items: list[Any] = []
        page, token, seen = 1, None, set()
        async with self._limit:
            for _ in range(self._settings.max_pages):
                params: dict[str, str | int] = {"page": page, "pageSize": self._settings.page_size}
                if token:
                    params["nextPageToken"] = token
                reply = await self._client.request(
                    "backup_tasks", "GET", "/v1/backup-tasks", params=params
                )
                items.extend(list_items(reply.body, "data"))
                body = reply.body if isinstance(reply.body, dict) else {}
                token = body.get("nextPageToken") or None
                total = body.get("totalPages")
                if token in seen:
                    logger.warning("msg=%s", "backup-tasks page tokens form a cycle")
                    self.stats.parse_errors += 1
                    break
                if token is None and not (isinstance(total, int) and page < total):
                    break
                seen.add(token)
                page += 1
        problems = Problems(self.stats)
        return parse_records(items, TaskRecord, problems, "backup-tasks", lambda r: bool(r.id))

    async def _load_jobs(self) -> list[JobRecord]:
        async with self._limit:
            reply = await self._client.request("partner_tasks", "GET", "/v1/partners/tasks")
        records = parse_records(
            list_items(reply.body, "tasks"),
            JobRecord,
            Problems(self.stats),
            "partners/tasks",
            lambda r: bool(r.id),
        )
        return [r for r in records if job_kind(r.kind) is not None]

    async def _load_job_status(self, job_id: str) -> JobStatusRecord:
        async with self._limit:
            reply = await self._client.request(
                "restore_status", "GET", f"/v1/restore/{quote(job_id, safe='')}"
            )
        body = reply.body
        if isinstance(body, dict) and isinstance(body.get("data"), dict):
            body = body["data"]
        records = parse_records([body], JobStatusRecord, Problems(self.stats), "restore")
        if not records:
            raise VendorError(f"GET /v1/restore/{job_id}: unexpected response shape")
        return records[0]

    async def _job(self, store: Store, record: JobRecord) -> _JobData:
        assert record.id is not None
        job_id = record.id
        done = self._finished_jobs.get(job_id)
        if done is not None:
            return _JobData(done, None)
        customer = record.customer_id or UNKNOWN
        kind = job_kind(record.kind) or UNKNOWN
        reading = Reading(store, self._clock)
        got = await reading.fetch(
            f"restore {job_id}", "restore_status", job_id, lambda: self._load_job_status(job_id)
        )
        if got is None:
            job = RestoreJob(job_id, customer, kind, UNKNOWN, record.created, None)
            return _JobData(job, reading.error)
        status = got.value
        job = RestoreJob(
            job_id,
            customer,
            kind,
            backup_status(status.status),
            status.started or record.created,
            status.ended,
        )
        if job.status in TERMINAL_STATUSES:
            self._finished_jobs[job_id] = job
        return _JobData(job, None)

    async def collect(self, store: Store) -> Snapshot:
        tasks = await store.fetch("backup_tasks", "", self._load_tasks)
        jobs = await store.fetch("partner_tasks", "", self._load_jobs)
        now = self._clock()
        window_start = now - self._settings.restore_window_seconds
        recent = [j for j in jobs.value if j.created is None or j.created >= window_start]
        recent_ids = {j.id for j in recent if j.id is not None}
        for job_id in [k for k in self._finished_jobs if k not in recent_ids]:
            del self._finished_jobs[job_id]
        store.retain("restore_status", recent_ids)
        results = await asyncio.gather(*(self._job(store, j) for j in recent))

        customers: dict[str, Customer] = {}
        names = application_names(tasks.value)
        applications = []
        for task in tasks.value:
            assert task.id is not None
            cid = task.customer_id or UNKNOWN
            customers.setdefault(
                cid, Customer(cid, task.customer_name or cid, "", product(task.service), UNKNOWN)
            )
            applications.append(
                ApplicationBackup(cid, names[task.id], task.last_backup, backup_status(task.status))
            )
        restore_jobs = [
            r.job
            for r in results
            if r.job is not None and (r.job.started is None or r.job.started >= window_start)
        ]
        errors: dict[str, str] = {}
        for result in results:
            if result.error and result.job is not None:
                errors[result.job.customer_id] = result.error
        return Snapshot(
            customers=tuple(customers.values()),
            applications=tuple(applications),
            restore_jobs=tuple(restore_jobs),
            customer_errors=errors,
            oldest_data=min(tasks.fetched_at, jobs.fetched_at),
        )
