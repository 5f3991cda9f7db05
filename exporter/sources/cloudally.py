"""CloudAlly: backup tasks (one protected workload each) and restore/download jobs.

The API publishes no response schemas. The shapes assumed here (documented in the README):

- ``POST /auth/partner`` -> ``{accessToken|access_token|token, refreshToken|refresh_token,
  expiresIn|expires_in}`` (possibly under ``data``); ``POST /auth/refresh`` likewise
- ``GET /v1/backup-tasks?page=&pageSize=&nextPageToken=`` ->
  ``{data: [...], totalPages, nextPageToken}``; a task: ``id``, ``customerId``/``accountId``,
  ``customerName``/``accountName``, ``alias``/``name``, ``type``/``source``/``service``,
  ``status``, ``lastBackupDate``/``lastBackup``/``lastRunTime``
- ``GET /v1/partners/tasks`` -> tasks with ``id``/``jobId``, ``type`` (restore, download, ...),
  ``customerId``, ``createdAt``
- ``GET /v1/restore/{jobId}`` -> ``{status, startTime|startedAt|createdAt,
  endTime|finishedAt|completedAt}``

Statuses seen only in an unofficial schema (success, failed, in_progress, paused, pending) are
mapped; anything else is ``unknown``, never a success or a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic import AliasChoices, Field

from exporter.cache import EndpointCache, FetchError
from exporter.config import CloudAllySourceConfig
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
    snake_case,
)
from exporter.sources._parse import Problems, Text, Timestamp, VendorModel, parse_records

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME: Final = 3600.0
JOB_KINDS: Final = {"restore": "restore", "download": "download", "export": "download"}


def _alias(*names: str) -> Any:
    return Field(None, validation_alias=AliasChoices(*names))


class TaskRecord(VendorModel):
    id: Text = _alias("id", "taskId")
    customer_id: Text = _alias("customerId", "accountId", "userId")
    customer_name: Text = _alias("customerName", "accountName", "userEmail", "email")
    name: Text = _alias("alias", "name", "taskName")
    service: Text = _alias("type", "source", "service", "serviceType")
    status: Text = _alias("status", "lastBackupStatus", "backupStatus")
    last_backup: Timestamp = _alias("lastBackupDate", "lastBackup", "lastRunTime", "lastBackupTime")


class JobRecord(VendorModel):
    id: Text = _alias("jobId", "id", "taskId")
    kind: Text = _alias("type", "taskType", "kind")
    customer_id: Text = _alias("customerId", "accountId", "userId")
    created: Timestamp = _alias("createdAt", "created", "creationDate", "startTime")
    status: Text = None


class JobStatusRecord(VendorModel):
    status: Text = _alias("status", "state")
    started: Timestamp = _alias("startTime", "startedAt", "createdAt", "startDate")
    ended: Timestamp = _alias("endTime", "finishedAt", "completedAt", "endDate")


def job_kind(value: str | None) -> str | None:
    """restore / download, or None for partner tasks that are neither."""
    word = snake_case(value)
    for needle, kind in JOB_KINDS.items():
        if needle in word:
            return kind
    return None


PRODUCT_HINTS: Final = (
    (
        ("exchange", "sharepoint", "one_drive", "onedrive", "teams", "office", "ms_", "o365"),
        "microsoft_365",
    ),
    (("google", "gmail", "g_drive", "gdrive", "g_suite"), "google_workspace"),
    (("salesforce",), "salesforce"),
    (("dropbox",), "dropbox"),
    (("box",), "box"),
)


def product(service: str | None) -> str:
    word = snake_case(service)
    for needles, name in PRODUCT_HINTS:
        if any(n in word for n in needles):
            return name
    return UNKNOWN


def _token_from(body: Any, what: str) -> Token:
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    if not isinstance(body, dict):
        raise VendorError(f"{what}: unexpected response shape")
    access = next(
        (body[k] for k in ("accessToken", "access_token", "token") if isinstance(body.get(k), str)),
        None,
    )
    if not access:
        raise VendorError(f"{what}: no access token in the response")
    refresh = next(
        (body[k] for k in ("refreshToken", "refresh_token") if isinstance(body.get(k), str)),
        None,
    )
    lifetime = next(
        (body[k] for k in ("expiresIn", "expires_in") if isinstance(body.get(k), int | float)),
        DEFAULT_TOKEN_LIFETIME,
    )
    if lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return Token(access, time.monotonic() + float(lifetime), refresh)


def application_names(tasks: list[TaskRecord]) -> dict[str, str]:
    """Task id -> application label, unique within a customer: a second task of the same
    service gets its task id appended, so no two tasks collide on one series."""
    names: dict[str, str] = {}
    taken: dict[str, set[str]] = defaultdict(set)
    for task in sorted(tasks, key=lambda t: t.id or ""):
        assert task.id is not None
        base = snake_case(task.service)
        label = base if base not in taken[task.customer_id or ""] else f"{base}/{task.id}"
        taken[task.customer_id or ""].add(label)
        names[task.id] = label
    return names


@dataclass(frozen=True, slots=True)
class _JobData:
    job: RestoreJob | None
    error: str | None


class CloudAllySource:
    provider = "cloudally"

    def __init__(
        self,
        config: CloudAllySourceConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = config.name
        self.stats = ApiStats()
        self._config = config
        self._clock = clock
        self._limit = asyncio.Semaphore(config.max_concurrency)
        # Terminal jobs cannot change: remembered, never asked about again.
        self._finished_jobs: dict[str, RestoreJob] = {}
        self.tokens = TokenCache(self._fetch_token, config.token_margin_seconds)
        self._client = VendorClient.for_source(
            config, auth=BearerAuth(self.tokens), stats=self.stats, transport=transport
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
                return _token_from(reply.body, "POST /auth/refresh")
            except VendorError as exc:
                logger.info("msg=%s reason=%s", "token refresh failed, logging in again", exc)
        return await self._login()

    async def _login(self) -> Token:
        config = self._config
        assert config.client_secret is not None  # the config validator guarantees it
        secret = config.client_secret.get_secret_value()
        headers = None
        body: dict[str, str]
        if config.auth_style == "headers":
            headers = {"client-id": config.client_id, "client-secret": secret}
            body = {}
            if config.email:
                body["email"] = config.email
            if config.password is not None:
                body["password"] = config.password.get_secret_value()
        else:
            body = {"clientId": config.client_id, "clientSecret": secret}
        reply = await self._client.request(
            "token", "POST", "/auth/partner", json=body, headers=headers, authenticated=False
        )
        return _token_from(reply.body, "POST /auth/partner")

    async def _load_tasks(self) -> list[TaskRecord]:
        items: list[Any] = []
        page, token, seen = 1, None, set()
        async with self._limit:
            for _ in range(self._config.max_pages):
                params: dict[str, str | int] = {"page": page, "pageSize": self._config.page_size}
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

    async def _job(self, cache: EndpointCache, record: JobRecord) -> _JobData:
        assert record.id is not None
        job_id = record.id
        done = self._finished_jobs.get(job_id)
        if done is not None:
            return _JobData(done, None)
        customer = record.customer_id or UNKNOWN
        kind = job_kind(record.kind) or UNKNOWN
        try:
            cached = await cache.get(
                "restore_status", job_id, lambda: self._load_job_status(job_id)
            )
        except FetchError as exc:
            if exc.stale is None:
                return _JobData(
                    RestoreJob(job_id, customer, kind, UNKNOWN, record.created, None),
                    f"restore {job_id}: {exc.reason}",
                )
            cached = exc.stale
        status = cached.value
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

    async def collect(self, cache: EndpointCache) -> Snapshot:
        tasks = await cache.get("backup_tasks", "", self._load_tasks)
        jobs = await cache.get("partner_tasks", "", self._load_jobs)
        now = self._clock()
        window_start = now - self._config.restore_window_seconds
        recent = [j for j in jobs.value if j.created is None or j.created >= window_start]
        recent_ids = {j.id for j in recent if j.id is not None}
        for job_id in [k for k in self._finished_jobs if k not in recent_ids]:
            del self._finished_jobs[job_id]
        cache.retain("restore_status", recent_ids)
        results = await asyncio.gather(*(self._job(cache, j) for j in recent))

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
