"""The whole loop the README shows, against the simulator: new unprotected seats appear in the
exporter's metrics (what the "new unprotected seats" alert counts), `seats list --state
unlicensed` names them, `seats change --action license --where state=unlicensed --apply`
licenses them, and the exporter running beside it, on its next seats refresh, shows no
unlicensed seat for that customer any more, so the alert's expression has nothing left."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from exporter.app import build_app
from exporter.config import load_config
from exporter.simulator.world import Shape
from tests.conftest import ServerThread, scrape, series
from tests.test_seats_support import add_seats, seats, set_states, vendor


def count(body: str, customer_id: int, state: str) -> float:
    found = series(
        body, "saas_backup_seats", source="datto", customer_id=str(customer_id), license_state=state
    )
    return sum(value for _, value in found)


def wait_for_metrics(
    exporter: ServerThread, done: Callable[[str], bool], timeout: float = 30
) -> str:
    """Scrape until ``done(body)`` holds."""
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = scrape(exporter)
        if done(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"the metrics never got there; last:\n{body[:2000]}")


@pytest.mark.parametrize("shape", ["live", "spec"])
def test_unprotected_seats_are_listed_licensed_and_leave_the_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: Shape
) -> None:
    # The exporter re-reads seats every second here; its other data as usual.
    cache = {"warm_up": False, "endpoints": {"seats": 1}}
    with vendor(tmp_path, shape=shape, style=shape, cache=cache) as v:
        customer = v.customer()
        set_states(customer, "Active")
        new = add_seats(customer, 3)
        # The exporter reads the same config file as the command.
        with ServerThread(build_app(load_config(v.config))) as exporter:
            body = wait_for_metrics(exporter, lambda b: count(b, customer.id, "unlicensed") > 0)
            assert count(body, customer.id, "unlicensed") == 3
            licensed = count(body, customer.id, "licensed")

            listed = seats(
                capsys,
                v,
                "list",
                "--customer",
                customer.domain,
                "--state",
                "unlicensed",
                "--output",
                "json",
            )
            assert listed.code == 0, listed.err
            assert [s["id"] for s in json.loads(listed.out)["seats"]] == new

            run = seats(
                capsys,
                v,
                "change",
                "--customer",
                customer.domain,
                "--action",
                "license",
                "--where",
                "state=unlicensed",
                "--apply",
            )
            assert run.code == 0, run.out + run.err
            assert "changed 3, skipped 0, failed 0" in run.out

            body = wait_for_metrics(exporter, lambda b: count(b, customer.id, "unlicensed") == 0)
            assert count(body, customer.id, "licensed") == licensed + 3
            # `sum by (source, customer_id) (saas_backup_seats{license_state="unlicensed"})`,
            # the alert's left-hand side, is 0 (or absent) for the customer, so not more than a
            # day ago: the alert's condition no longer holds, and it resolves.
            unlicensed = series(
                body, "saas_backup_seats", customer_id=str(customer.id), license_state="unlicensed"
            )
            assert all(value == 0 for _, value in unlicensed)
            assert httpx.get(exporter.url + "/-/healthy", timeout=5).status_code == 200
