"""Customer filters (`customers: {include, exclude}` per source), over real sockets: customers left
out are not crawled (no vendor call names them) and not exported, from a fresh start and from a
state file written before the filter; `--config.check` says how many each filter keeps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.app import build_app
from exporter.config import ConfigError, build_config
from exporter.simulator.app import Simulator
from tests.conftest import (
    ServerThread,
    backupify_source,
    cloudally_source,
    datto_source,
    scrape,
    series,
    value,
)


def customers_of(body: str, source: str) -> set[str]:
    return {
        labels["customer_id"]
        for labels, _ in series(body, "saas_backup_customer_info", source=source)
    }


def run(sim: Simulator, *sources: dict[str, Any], state: Path | None = None) -> str:
    cache: dict[str, Any] = {"ttl_seconds": 300, "warm_up": False}
    if state is not None:
        cache["state_file"] = str(state)
    config = build_config({"cache": cache, "sources": list(sources)})
    with ServerThread(build_app(config)) as exporter:
        return scrape(exporter)


def test_excluded_customers_are_neither_read_nor_exported() -> None:
    sim = Simulator(customers=6, seats_per_customer=4, seed=3)
    fleet = sim.fleet.customers
    left_out = {str(fleet[1].id), str(fleet[4].id)}
    with ServerThread(sim.app()) as vendor:
        body = run(
            sim,
            datto_source(
                vendor.url,
                customers={
                    # By id, and by name as an anchored regex.
                    "exclude": [str(fleet[1].id), {"regex": f"{fleet[4].name[:4]}.*"}],
                },
            ),
        )
    assert value(body, "saas_backup_up", source="datto") == 1
    served = customers_of(body, "datto")
    assert served == {str(c.id) for c in fleet} - left_out
    assert value(body, "saas_backup_source_customers", source="datto") == 4
    for customer_id in left_out:
        assert f'customer_id="{customer_id}"' not in body
        assert not [r for r in sim.requests if f"/{customer_id}/" in r.path], customer_id
    for customer_id in served:
        assert [r for r in sim.requests if f"/{customer_id}/seats" in r.path], customer_id


def test_include_keeps_only_the_customers_it_names() -> None:
    sim = Simulator(customers=6, seats_per_customer=4, seed=3)
    fleet = sim.fleet.customers
    with ServerThread(sim.app()) as vendor:
        body = run(
            sim,
            datto_source(
                vendor.url,
                customers={
                    "include": [fleet[0].name, str(fleet[2].id)],
                    "exclude": [fleet[0].name],
                },
            ),
        )
    # Exclude wins over include.
    assert customers_of(body, "datto") == {str(fleet[2].id)}


# The live CloudAlly API signs in with the partner's e-mail and password as well.
LIVE_CLOUDALLY = {"auth_style": "headers", "email": "ops@example.com", "password": "pw-1"}


def test_every_vendor_filters_by_name() -> None:
    sim = Simulator(customers=6, seats_per_customer=4, seed=3, shape="live")
    with ServerThread(sim.app()) as vendor:
        everything = run(
            sim, backupify_source(vendor.url), cloudally_source(vendor.url, **LIVE_CLOUDALLY)
        )
        for source in ("backupify", "cloudally"):
            names = {
                labels["customer_id"]: labels["customer_name"]
                for labels, _ in series(everything, "saas_backup_customer_info", source=source)
            }
            assert len(names) >= 2, (source, names)
            dropped = sorted(names)[0]
            settings = (
                backupify_source(vendor.url)
                if source == "backupify"
                else cloudally_source(vendor.url, **LIVE_CLOUDALLY)
            )
            body = run(sim, {**settings, "customers": {"exclude": [names[dropped]]}})
            assert customers_of(body, source) == set(names) - {dropped}, source


def test_a_filter_added_later_hides_saved_customers_at_once(tmp_path: Path) -> None:
    sim = Simulator(customers=5, seats_per_customer=4, seed=3)
    state = tmp_path / "state.db"
    gone = sim.fleet.customers[2]
    with ServerThread(sim.app()) as vendor:
        url = vendor.url
        before = run(sim, datto_source(url), state=state)
        assert str(gone.id) in customers_of(before, "datto")
    # The vendor is gone now (its address refuses): what is served comes from the state file.
    body = run(
        sim, datto_source(url, customers={"exclude": [gone.name]}, timeout_seconds=1), state=state
    )
    served = customers_of(body, "datto")
    assert served == {str(c.id) for c in sim.fleet.customers} - {str(gone.id)}


def write_config(path: Path, sources: list[dict[str, Any]], state: Path) -> Path:
    path.write_text(yaml.safe_dump({"cache": {"state_file": str(state)}, "sources": sources}))
    return path


def config_check(path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path), "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_config_check_says_how_many_customers_each_filter_keeps(tmp_path: Path) -> None:
    sim = Simulator(customers=6, seats_per_customer=4, seed=3)
    state = tmp_path / "state.db"
    fleet = sim.fleet.customers
    with ServerThread(sim.app()) as vendor:
        filtered = datto_source(
            vendor.url, customers={"exclude": [{"regex": f"{fleet[0].name}|{fleet[3].name}"}]}
        )
        path = write_config(tmp_path / "config.yml", [filtered], state)
        assert "keeps an unknown share (no customer list saved yet)" in config_check(path)
        run(sim, filtered, state=state)
    # The saved list is the whole customer list, so a changed filter is counted right too.
    out = config_check(path)
    assert "customer filter: keeps 4 of 6 customers last listed" in out
    # The plan is sized for the customers kept.
    assert "datto (datto), 4 customers:" in out
    wider = datto_source(vendor.url, customers={"exclude": [fleet[0].name]})
    out = config_check(write_config(tmp_path / "wider.yml", [wider], state))
    assert "customer filter: keeps 5 of 6 customers last listed" in out


@pytest.mark.parametrize(
    ("customers", "problem"),
    [
        ({"exclude": [{"regex": "(unclosed"}]}, "not a valid regular expression"),
        ({"exclude": [{"pattern": "x"}]}, "customers.exclude"),
        ({"only": ["x"]}, "customers.only"),
    ],
)
def test_a_bad_filter_is_a_clear_config_error(customers: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config({"sources": [datto_source("http://127.0.0.1:9", customers=customers)]})
    message = str(raised.value)
    assert problem in message
    assert "sources[0]" in message or "sources.0" in message or "datto" in message
    # The pattern itself is not quoted back.
    assert "(unclosed" not in message
