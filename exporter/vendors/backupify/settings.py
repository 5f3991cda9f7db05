"""The config section of a legacy Backupify v1 source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, SecretStr

from exporter.settings import SourceBase


class BackupifySettings(SourceBase):
    SECRETS = ("client_secret",)
    REQUIRED_SECRETS = ("client_secret",)

    vendor: Literal["backupify"] = Field(alias="type")
    base_url: HttpUrl = HttpUrl("https://api.backupify.com")
    client_id: Annotated[str, Field(min_length=1)]
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    scope: str | None = None
    # Default: every backup definition the credentials can see.
    backup_definition_ids: list[str] | None = None
    max_pages: Annotated[int, Field(ge=1, le=1000)] = 50
    token_margin_seconds: Annotated[float, Field(ge=0)] = 60.0
