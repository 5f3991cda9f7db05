"""Legacy Backupify v1: every call the source makes, each returning parsed records. Nothing here
decides about caching or about which customer a failure belongs to (``source.py`` does).

``GET /v1/vendors/me`` answers with our own client secret: it is never called, and our vendor id
(which only it reveals) is never needed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar
from urllib.parse import quote

import httpx

from exporter.http import (
    ApiStats,
    BearerAuth,
    Reply,
    Token,
    TokenCache,
    VendorClient,
    VendorError,
)
from exporter.parsing import Problems, parse_records
from exporter.vendors.backupify.parse import (
    BackupRecord,
    CustomerRecord,
    DefinitionRecord,
    ExportRecord,
    InstanceRecord,
    distinct_newest_first,
    in_window,
    newest_finished,
    parse_active,
    parse_backups,
    parse_definition,
    parse_exports,
)
from exporter.vendors.backupify.settings import BackupifySettings

logger = logging.getLogger(__name__)

R = TypeVar("R")

DEFAULT_TOKEN_LIFETIME: Final = 3600.0
# A backup list is in ascending id order: its first page (for the `last` link), then the last
# page and at most this many earlier ones are read looking for the newest finished backup.
MAX_BACKWARD_PAGES: Final = 3


def not_found(exc: VendorError) -> bool:
    return exc.status == 404


def _q(identifier: str) -> str:
    return quote(identifier, safe="")


class BackupifyApi:
    def __init__(
        self,
        settings: BackupifySettings,
        stats: ApiStats,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.stats = stats
        self._settings = settings
        self.tokens = TokenCache(self._fetch_token, settings.token_margin_seconds)
        self.client = VendorClient.for_source(
            settings, auth=BearerAuth(self.tokens), stats=stats, transport=transport
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def _problems(self) -> Problems:
        return Problems(self.stats)

    async def _fetch_token(self, _: Token | None) -> Token:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._settings.client_id,
            "client_secret": self._settings.secret("client_secret"),
        }
        if self._settings.scope:
            form["scope"] = self._settings.scope
        reply = await self.client.request(
            "token", "POST", "/oauth/token", data=form, authenticated=False
        )
        body = reply.body if isinstance(reply.body, dict) else {}
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise VendorError("POST /oauth/token: no access_token in the response")
        # token_type is not checked: the swagger says "bearer_token", OAuth servers "bearer",
        # and either way the token goes out as `Authorization: Bearer`, which is what works.
        lifetime = body.get("expires_in")
        if (
            not isinstance(lifetime, int | float)
            or isinstance(lifetime, bool)
            or not math.isfinite(lifetime)
            or lifetime <= 0
        ):
            lifetime = DEFAULT_TOKEN_LIFETIME
        return Token(token, time.monotonic() + float(lifetime))

    async def _list(self, endpoint: str, path: str, key: str, params: Any = None) -> list[Any]:
        return await self.client.get_linked(
            endpoint, path, params, max_pages=self._settings.max_pages, items_key=key
        )

    async def customers(self) -> list[CustomerRecord] | None:
        """Our customers; None when the server has no ``/v1/customers`` (it answers 404), which
        is how a server of the spec shape is told apart."""
        try:
            items = await self._list("customers", "/v1/customers", "customers")
        except VendorError as exc:
            if not_found(exc):
                logger.info("msg=%s", "no /v1/customers here, reading backup definitions instead")
                return None
            raise
        return parse_records(
            items, CustomerRecord, self._problems(), "customers", lambda r: bool(r.id)
        )

    async def customer_instances(self, customer_id: str) -> list[InstanceRecord]:
        items = await self._list(
            "customer_instances",
            f"/v1/customers/{_q(customer_id)}/backup_instances",
            "backup_instances",
        )
        return parse_records(
            items, InstanceRecord, self._problems(), "instances", lambda r: bool(r.id)
        )

    async def definitions(self) -> list[DefinitionRecord]:
        """Spec path: the configured definitions, else the listing (every vendor's)."""
        if self._settings.backup_definition_ids is not None:
            return [DefinitionRecord(id=i) for i in self._settings.backup_definition_ids]
        items = await self._list("definitions", "/v1/backup_definitions", "backup_definitions")
        return parse_records(
            items, DefinitionRecord, self._problems(), "definitions", lambda r: bool(r.id)
        )

    async def definition(self, definition_id: str) -> DefinitionRecord:
        reply = await self.client.request(
            "definition", "GET", f"/v1/backup_definitions/{_q(definition_id)}"
        )
        record = parse_definition(reply.body, self._problems())
        if record is None:
            raise VendorError("GET /v1/backup_definitions/{id}: unexpected response shape")
        return record

    async def definition_instances(self, definition_id: str) -> list[InstanceRecord]:
        """Spec path: a definition's instances. The listing spans every vendor, and another
        vendor's definition answers 404: that is "none of ours", not a failure."""
        try:
            items = await self._list(
                "instances",
                "/v1/backup_instances",
                "backup_instances",
                {"backup_definition_id": definition_id},
            )
        except VendorError as exc:
            if not_found(exc):
                logger.debug("msg=%s definition_id=%s", "not one of our definitions", definition_id)
                return []
            raise
        return parse_records(
            items, InstanceRecord, self._problems(), "instances", lambda r: bool(r.id)
        )

    async def active(self, instance_id: str) -> BackupRecord | None:
        path = f"/v1/backup_instances/{_q(instance_id)}/backups/active"
        # 204: nothing runs. A 404 (unknown instance) stays an error.
        reply = await self.client.request("active_backup", "GET", path, allow_empty=True)
        return parse_active(reply.body, self._problems())

    async def newest_finished(self, instance_id: str) -> BackupRecord | None:
        problems = self._problems()
        records = await self._tail(
            "backups",
            f"/v1/backup_instances/{_q(instance_id)}/backups",
            lambda body: parse_backups(body, problems),
            lambda page: newest_finished(page) is not None,
            MAX_BACKWARD_PAGES + 1,
        )
        return newest_finished(records)

    async def exports(self, instance_id: str, since: float) -> list[ExportRecord]:
        """Exports started at or after ``since``, newest first."""
        problems = self._problems()

        def reaches_back(page: list[ExportRecord]) -> bool:
            # Ids ascend with time: a page reaching past the window start makes older pages moot.
            return not page or not all(in_window(r, since) for r in page)

        records = await self._tail(
            "exports",
            f"/v1/backup_instances/{_q(instance_id)}/exports",
            lambda body: parse_exports(body, problems),
            reaches_back,
            self._settings.max_pages,
        )
        return [r for r in distinct_newest_first(records) if in_window(r, since)]

    async def _tail(
        self,
        endpoint: str,
        path: str,
        parse: Callable[[Any], list[R]],
        enough: Callable[[list[R]], bool],
        max_pages: int,
    ) -> list[R]:
        """The newest records of a list in ascending order, oldest first. The first page is read
        for its ``last`` link; then ``last`` and ``prev`` pages until ``enough`` says a page
        covers what is wanted, at most ``max_pages`` in all (but always the last one). Links to
        another origin are refused (they would receive the token), and a link seen before ends
        the walk. When not even the last page can be read, that is an error: the first page
        alone would pass old records off as the newest."""
        first = await self.client.request(endpoint, "GET", path)
        head = parse(first.body)
        # No `next`: the first page is the whole list.
        more = "next" in first.links
        url = first.links.get("last") if more else None
        pages: list[list[R]] = []
        seen = {first.url}
        reply: Reply = first
        while url is not None:
            if url == reply.links.get("first"):
                # Back at the first page, which was read already.
                pages.insert(0, head)
                break
            if pages and len(pages) + 1 >= max_pages:
                logger.warning(
                    "msg=%s endpoint=%s pages=%s",
                    "stopped at the page limit",
                    endpoint,
                    max_pages,
                )
                break
            if not self.client.same_origin(url):
                logger.warning(
                    "msg=%s endpoint=%s",
                    "refused a pagination link to another origin",
                    endpoint,
                )
                self.stats.parse_errors += 1
                break
            if url in seen:
                logger.warning("msg=%s endpoint=%s", "pagination links form a cycle", endpoint)
                self.stats.parse_errors += 1
                break
            reply = await self.client.request(endpoint, "GET", url)
            seen.update((url, reply.url))
            page = parse(reply.body)
            pages.insert(0, page)
            url = None if enough(page) else reply.links.get("prev")
        if not pages:
            if more:
                raise VendorError(f"GET {path}: the last page could not be read")
            return head
        return [record for page in pages for record in page]
