"""The Grafana provisioning files: they load, with no misspelled field, and match the README."""

from __future__ import annotations

from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from tests.test_dashboards import ROOT

PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Datasource(Strict):
    """Grafana's datasource provisioning fields (pkg/services/provisioning/datasources)."""

    name: str
    type: str
    uid: str | None = None
    access: Literal["proxy", "direct"]
    orgId: int = 1
    url: str
    isDefault: bool = False
    editable: bool = False
    basicAuth: bool = False
    jsonData: dict[str, Any] = {}
    secureJsonData: dict[str, str] = {}
    version: int | None = None


class Datasources(Strict):
    apiVersion: Literal[1]
    datasources: list[Datasource]


class ProviderOptions(Strict):
    path: str
    foldersFromFilesStructure: bool = False


class Provider(Strict):
    """Grafana's dashboard provider fields (pkg/services/provisioning/dashboards)."""

    name: str
    orgId: int = 1
    folder: str = ""
    folderUid: str = ""
    type: Literal["file"]
    disableDeletion: bool = False
    allowUiUpdates: bool = False
    updateIntervalSeconds: int = 10
    options: ProviderOptions


class Providers(Strict):
    apiVersion: Literal[1]
    providers: list[Provider]


def test_provisioning_loads_and_matches_the_dashboards() -> None:
    datasource_files = sorted((PROVISIONING / "datasources").glob("*.yml"))
    provider_files = sorted((PROVISIONING / "dashboards").glob("*.yml"))
    assert datasource_files
    assert provider_files
    datasources = [
        d
        for f in datasource_files
        for d in Datasources(**yaml.safe_load(f.read_text())).datasources
    ]
    providers = [
        p for f in provider_files for p in Providers(**yaml.safe_load(f.read_text())).providers
    ]
    assert [d.type for d in datasources] == ["prometheus"]
    assert datasources[0].isDefault
    (provider,) = providers
    # The README's `docker run` mounts dashboards/ at the provider's path.
    readme = (ROOT / "README.md").read_text()
    assert f"dashboards:{provider.options.path}:ro" in readme
    assert "deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in readme


def test_provisioning_rejects_a_misspelled_field() -> None:
    """The models above are strict, so the test above would catch a typo in the files."""
    with pytest.raises(ValueError, match="updateIntervalSecond"):
        Provider(name="x", type="file", options={"path": "/x"}, updateIntervalSecond=5)  # type: ignore[call-arg]
