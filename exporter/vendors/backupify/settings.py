"""The config section of a legacy Backupify v1 source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, SecretStr

from exporter.settings import PositiveSeconds, SourceBase


class BackupifySettings(SourceBase):
    SECRETS = ("client_secret",)
    REQUIRED_SECRETS = ("client_secret",)
    # The endpoint labels of its calls (saas_backup_api_requests_total).
    ENDPOINTS = frozenset(
        {
            "token",
            "customers",
            "customer_instances",
            "definition",
            "definitions",
            "instances",
            "active_backup",
            "backups",
            "exports",
        }
    )

    vendor: Literal["backupify"] = Field(alias="type")
    base_url: HttpUrl = HttpUrl("https://api.backupify.com")
    client_id: Annotated[str, Field(min_length=1)]
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    # The swagger requires scope on the token request and knows one value, "write" (a missing
    # scope is a 400 "Invalid Scope"). null or "" sends none, for servers that refuse it.
    scope: str | None = "write"
    # Default: every backup definition our customers' instances use. When set, only instances
    # of these definitions are exported.
    backup_definition_ids: list[str] | None = None
    max_pages: Annotated[int, Field(ge=1, le=1000)] = 50
    # Exports (Backupify's download jobs) started longer ago are not exported.
    restore_window_seconds: PositiveSeconds = 7 * 86400.0
    token_margin_seconds: Annotated[float, Field(ge=0)] = 60.0
