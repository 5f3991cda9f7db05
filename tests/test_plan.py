"""Sizing: the calls per hour a config needs, as `--config.check` prints it and as the budget
gauges export it, and the per-endpoint TTL defaults behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cache import EndpointCache
from exporter.cli import main
from exporter.config import CacheConfig, build_config
from exporter.model import Customer, Snapshot
from exporter.persist import fingerprint
from exporter.plan import plan_source
from exporter.source import Part
from exporter.state import SourceMeta, StateFile
from exporter.vendors import datto
from tests.conftest import backupify_source, datto_source


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_vendor_ttls_apply_unless_the_config_sets_ttl_seconds() -> None:
    defaults = datto.VENDOR.endpoints
    assert EndpointCache(CacheConfig(), defaults=defaults).ttl("seats") == 3600
    assert EndpointCache(CacheConfig(), defaults=defaults).ttl("domains") == 900
    # A ttl_seconds set in the config keeps meaning what it always has: every endpoint.
    assert EndpointCache(CacheConfig(ttl_seconds=60), defaults=defaults).ttl("seats") == 60
    overridden = CacheConfig(ttl_seconds=60, endpoints={"seats": 7200})
    assert EndpointCache(overridden, defaults=defaults).ttl("seats") == 7200


def test_a_plan_counts_calls_per_customer_and_per_crawl() -> None:
    config = build_config({"sources": [datto_source("https://api.datto.example")]})
    plan = plan_source(config.sources[0], config.cache, 300)
    per_endpoint = {e.endpoint: e.calls_per_hour for e in plan.endpoints}
    assert per_endpoint == {"domains": 4, "seats": 300, "applications": 300}
    assert plan.calls_per_hour == 604
    assert plan.crawl_calls == 601
    assert plan.customer_interval == 3600
    assert plan.budget_per_hour is None
    assert plan.cover_seconds(None) is None
    assert plan.cover_seconds(601) == 3600


def test_config_check_prints_the_plan_against_the_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        {
            "sources": [
                datto_source("https://api.datto.example"),
                backupify_source("https://api.backupify.example", budget={"calls_per_hour": 1000}),
            ]
        },
    )
    assert main(["--config.file", str(path), "--config.check", "--plan.customers", "300"]) == 0
    out = capsys.readouterr().out
    assert "datto (datto), 300 customers: 604 calls/h, each customer every 1h" in out
    assert "X-API-Limit-*" in out, "Datto's budget is the vendor's to report"
    assert "budget: 900 calls/h after the 10% reserve: does NOT fit" in out
    assert "exports" in out


def test_the_plan_counts_the_customers_the_state_file_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_file = tmp_path / "state.db"
    data = {
        "cache": {"state_file": str(state_file)},
        "sources": [datto_source("https://api.datto.example")],
    }
    path = write(tmp_path, data)
    assert main(["--config.file", str(path), "--config.check"]) == 0
    assert "100 customers: 204 calls/h" in capsys.readouterr().out
    assert not state_file.exists(), "a check creates no state file"
    settings = build_config(data).sources[0]
    state = StateFile(state_file)
    parts = {
        str(i): Part(str(i), Snapshot(customers=(Customer(str(i), "c", "", "m", "a"),)), 0, 0)
        for i in range(7)
    }
    assert state.save("datto", fingerprint(settings), SourceMeta(), parts, (), replace=True)
    state.close()
    assert main(["--config.file", str(path), "--config.check"]) == 0
    out = capsys.readouterr().out
    assert "datto (datto), 7 customers: 18 calls/h" in out
    assert "assumed" not in out
