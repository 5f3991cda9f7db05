"""Datto SaaS Protection seat management: bulkSeatChange, the API's one write operation.

Two request styles, chosen per source (``seat_change_style``):

- ``live`` (default), what the live API takes:
  ``PUT /v1/saas/{saasCustomerId}/{externalSubscriptionId}/bulkSeatChange`` with
  ``{"seat_type": "User", "action_type": "License", "ids": [...]}``, the subscription id being
  the customer's own (``Classic:Office365:654321``). Values are case-sensitive.
- ``spec``, the published spec's: the path's ``externalSubscriptionId`` is a literal segment and
  the body is ``{"seats": [{"remoteId", "action", "seatType"}]}``.

Both take the actions ``License``, ``Pause`` and ``Unlicense`` and the seat types ``User``,
``SharedMailbox``, ``Site``, ``TeamSite``, ``Team`` (live also ``SharedDrive``). A request holds
at most 100 ids (Datto's how-to says 199; its clients cap at 100) of one seat type.

The answer: the spec's ``{"results": [{remoteId, success, message}]}``, or that list bare (one
client's mock of the live API). The live answer is not publicly documented and may carry no
per-seat result at all; then the seats are read again (``exporter.seats.confirm``). Datto
applies changes asynchronously, in about two minutes.

Legacy Google seat management has no bulkSeatChange (Datto's how-to documents it for Microsoft
365 seats). A customer is taken to be on it when it is a Google Workspace customer (its
``productType``, or where that is missing the product in its subscription id, is
``GoogleApps``) with a ``Classic:`` subscription id, ``Classic:GoogleApps:123456``; such a
customer's changes are refused before any request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

import httpx

from exporter.http import ApiStats, VendorError
from exporter.model import valid_text
from exporter.parsing import Problems, Text, first_by_id, parse_records, unwrap_list, wrong_shape
from exporter.seats import ChangeReply, ManagedCustomer, SeatRow
from exporter.vendors.datto.parse import DomainRecord, license_state, seat_records, to_customer
from exporter.vendors.datto.settings import DattoSettings
from exporter.vendors.datto.source import client, seats_path

logger = logging.getLogger(__name__)

SEAT_TYPES: Final = ("User", "SharedMailbox", "Site", "TeamSite", "Team", "SharedDrive")
ACTION_WORDS: Final = {"license": "License", "pause": "Pause", "unlicense": "Unlicense"}
SPEC_SEGMENT: Final = "externalSubscriptionId"
MAX_BATCH: Final = 100
# The changes Datto offers ("Changing seat status", M365): Active -> Pause or Unprotect;
# Paused -> Protect or Unprotect; Unprotected -> Protect; Archived (the user left M365) -> only
# "Delete Backups". Keyed by the normalized state; a state not listed is left to Datto.
OFFERED: Final = {
    "licensed": {"pause", "unlicense"},
    "paused": {"license", "unlicense"},
    "unlicensed": {"license"},
    "archived": set[str](),
}
GOOGLE: Final = "googleapps"
# A vendor's per-seat message is shown to people: kept short and free of control characters.
MESSAGE_CHARS: Final = 200


class SubscriptionRecord(DomainRecord):
    externalSubscriptionId: Text = None


def legacy_google(product_type: str | None, subscription: str | None) -> bool:
    parts = (subscription or "").split(":")
    product = product_type or (parts[1] if len(parts) == 3 else "")
    return product.replace(" ", "").lower() == GOOGLE and parts[0].lower() == "classic"


def change_request(
    style: str,
    customer_id: str,
    subscription: str,
    *,
    action: str,
    seat_type: str,
    ids: Sequence[str],
) -> tuple[str, dict[str, Any]]:
    """The path and the JSON body of one bulkSeatChange request."""
    word = ACTION_WORDS[action]
    customer = quote(customer_id, safe="")
    if style == "spec":
        body: dict[str, Any] = {
            "seats": [{"remoteId": i, "action": word, "seatType": seat_type} for i in ids]
        }
        return f"/v1/saas/{customer}/{SPEC_SEGMENT}/bulkSeatChange", body
    # Colons stay as they are, as Datto's how-to writes the id.
    path = f"/v1/saas/{customer}/{quote(subscription, safe=':')}/bulkSeatChange"
    return path, {"seat_type": seat_type, "action_type": word, "ids": list(ids)}


def shown(text: object) -> str:
    clean = "".join(c if c.isprintable() else " " for c in valid_text(str(text)))
    return clean[:MESSAGE_CHARS]


def read_results(body: Any, ids: Sequence[str]) -> dict[str, tuple[bool, str]]:
    """Per seat, from ``{"results": [...]}`` or a bare list; only the ids that were sent, and
    only entries that say ``success`` as a boolean (or ``"true"``/``"false"``)."""
    items = unwrap_list(body, "results")
    if items is None:
        return {}
    sent = set(ids)
    found: dict[str, tuple[bool, str]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        seat_id = item.get("remoteId")
        success = item.get("success")
        if isinstance(success, str) and success.strip().lower() in ("true", "false"):
            success = success.strip().lower() == "true"
        if not isinstance(seat_id, str | int) or isinstance(seat_id, bool):
            continue
        if str(seat_id) not in sent or not isinstance(success, bool):
            continue
        message = item.get("message")
        found.setdefault(str(seat_id), (success, shown(message) if message is not None else ""))
    return found


def status_error(exc: VendorError, style: str) -> VendorError:
    """The request's failure in words that say what to check."""
    hints = {
        401: "the API keys were refused (check public_key and private_key)",
        403: "the API key may not change seats (a read-only key?)",
        404: f"the customer or its subscription was not found (seat_change_style: {style}?)",
        400: f"Datto refused the request (seat_change_style: {style}?)",
    }
    hint = hints.get(exc.status or 0)
    return VendorError(f"{exc}: {hint}" if hint else str(exc), exc.status)


class DattoSeatManager:
    seat_types = SEAT_TYPES

    def __init__(
        self, settings: DattoSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.stats = ApiStats()
        self.style = settings.seat_change_style
        # The settings cap it at MAX_BATCH.
        self.max_batch = settings.seat_change_batch_size
        self._client = client(settings, self.stats, transport)
        # customer id -> (productType, externalSubscriptionId) as Datto gave them.
        self._subscriptions: dict[str, tuple[str | None, str | None]] = {}

    def describe(self) -> str:
        if self.style == "spec":
            return (
                "spec: PUT /v1/saas/{saasCustomerId}/externalSubscriptionId/bulkSeatChange "
                "with {seats: [{remoteId, action, seatType}]}"
            )
        return (
            "live: PUT /v1/saas/{saasCustomerId}/{externalSubscriptionId}/bulkSeatChange "
            "with {seat_type, action_type, ids}"
        )

    def _problems(self) -> Problems:
        return Problems(self.stats, time.time())

    async def customers(self) -> list[ManagedCustomer]:
        body = await self._client.get_json("domains", "/v1/saas/domains")
        items = unwrap_list(body, "domains")
        problems = self._problems()
        if items is None:
            raise wrong_shape(problems, "GET /v1/saas/domains")
        records = parse_records(
            items, SubscriptionRecord, problems, "domains", lambda r: bool(r.saasCustomerId)
        )
        customers = []
        for record in first_by_id(records, lambda r: r.saasCustomerId):
            customer = to_customer(record, problems)
            self._subscriptions[customer.id] = (record.productType, record.externalSubscriptionId)
            customers.append(
                ManagedCustomer(customer.id, customer.name, customer.domain, customer.product)
            )
        return customers

    async def seats(self, customer: ManagedCustomer) -> list[SeatRow]:
        body = await self._client.get_json("seats", seats_path(customer.id))
        rows = []
        for record in seat_records(body, customer.id, self._problems()):
            seat_id = record.remoteId or ""
            vendor_state = record.seatState or record.licenseStatus or ""
            rows.append(
                SeatRow(
                    id=seat_id,
                    name=record.displayName or record.name or record.mainId or seat_id,
                    seat_type=(record.seatType or "").strip(),
                    state=license_state(record.licenseStatus or record.seatState),
                    vendor_state=vendor_state,
                )
            )
        return rows

    def refusal(self, customer: ManagedCustomer, action: str) -> str | None:
        product_type, subscription = self._subscriptions.get(customer.id, (None, None))
        if legacy_google(product_type, subscription):
            return (
                f"customer {customer.id} is on legacy Google seat management "
                f"(a Google Workspace customer with subscription {subscription}): Datto "
                "offers no bulk seat change for it; change its seats in the Datto portal"
            )
        if self.style == "live" and not subscription:
            return (
                f"Datto lists no externalSubscriptionId for customer {customer.id}, and the "
                "live request style needs it (seat_change_style: live)"
            )
        if action not in ACTION_WORDS:
            return f"Datto has no {action!r} seat action"
        return None

    def impossible(self, seat: SeatRow, action: str) -> str | None:
        offered = OFFERED.get(seat.state)
        if offered is None or action in offered:
            return None
        if seat.state == "archived":
            return "Datto only deletes the backups of an archived seat"
        return f"Datto offers no {action} for a {seat.state} seat"

    def caution(self, action: str) -> str | None:
        if action == "unlicense":
            return (
                "Datto starts a 30-day countdown to deleting an unprotected seat's backed-up "
                "data, and unprotected seats are not backed up"
            )
        return None

    async def change(
        self, customer: ManagedCustomer, action: str, seat_type: str, ids: Sequence[str]
    ) -> ChangeReply:
        if not 0 < len(ids) <= MAX_BATCH:
            raise ValueError(f"{len(ids)} ids: a request takes 1 to {MAX_BATCH}")
        _, subscription = self._subscriptions.get(customer.id, (None, None))
        path, body = change_request(
            self.style, customer.id, subscription or "", action=action, seat_type=seat_type, ids=ids
        )
        try:
            reply = await self._client.request(
                "seat_change", "PUT", path, json=body, allow_empty=True
            )
        except VendorError as exc:
            raise status_error(exc, self.style) from None
        return ChangeReply(read_results(reply.body, ids))

    async def aclose(self) -> None:
        await self._client.aclose()


def manager(
    settings: DattoSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> DattoSeatManager:
    """The seat manager for a Datto source (found by ``exporter.seats.manager_for``)."""
    return DattoSeatManager(settings, transport=transport)
