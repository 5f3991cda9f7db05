"""The config section of a CloudAlly source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, SecretStr

from exporter.settings import PositiveSeconds, SourceBase


class CloudAllySettings(SourceBase):
    SECRETS = ("client_secret", "password")
    REQUIRED_SECRETS = ("client_secret",)
    # The endpoint labels of its calls (saas_backup_api_requests_total).
    ENDPOINTS = frozenset(
        {"token", "backup_tasks", "partner_tasks", "partner_status", "restore_status"}
    )

    vendor: Literal["cloudally"] = Field(alias="type")
    base_url: HttpUrl = HttpUrl("https://api.cloudally.com")
    client_id: Annotated[str, Field(min_length=1)]
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    # "body": the spec's {clientId, clientSecret}; "headers": client-id/client-secret headers
    # with an optional {email, password} body, as a live client does.
    auth_style: Literal["body", "headers"] = "body"
    email: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    page_size: Annotated[int, Field(ge=1, le=1000)] = 100
    max_pages: Annotated[int, Field(ge=1, le=1000)] = 50
    restore_window_seconds: PositiveSeconds = 7 * 86400.0
    token_margin_seconds: Annotated[float, Field(ge=0)] = 60.0
