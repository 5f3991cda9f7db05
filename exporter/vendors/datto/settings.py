"""The config section of a Datto SaaS Protection source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, SecretStr

from exporter.settings import SourceBase


class DattoSettings(SourceBase):
    SECRETS = ("private_key",)
    REQUIRED_SECRETS = ("private_key",)
    # The endpoint labels of its calls (saas_backup_api_requests_total).
    ENDPOINTS = frozenset({"domains", "seats", "applications", "seat_change"})

    vendor: Literal["datto"] = Field(alias="type")
    base_url: HttpUrl = HttpUrl("https://api.datto.com")
    public_key: Annotated[str, Field(min_length=1)]
    private_key: SecretStr | None = None
    private_key_file: Path | None = None
    applications_days: Annotated[int, Field(ge=1, le=30)] = 10
    applications_page_size: Annotated[int, Field(ge=1, le=1000)] = 100
    # Pages of /applications read per customer, whatever its totalPages says. One page holds
    # a customer's applications (one item each in the spec's shape, one in all live).
    applications_max_pages: Annotated[int, Field(ge=1, le=1000)] = 10
    # How `seats change` sends bulkSeatChange: live, the body {seat_type, action_type, ids}
    # under the customer's externalSubscriptionId, as the live API takes it; spec, the
    # published spec's {seats: [{remoteId, action, seatType}]} under its literal path segment.
    seat_change_style: Literal["live", "spec"] = "live"
    # Seat ids per bulkSeatChange request. Datto's how-to says 199; its clients send 100.
    seat_change_batch_size: Annotated[int, Field(ge=1, le=100)] = 100
