"""What the `seats` command's tests share: the simulator on a real socket, a config file the
exporter would read (its secret in a `*_file`), and the command run as a user runs it. No test
here: the tests are in the other tests/test_seats_*.py files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import main
from exporter.simulator.app import RequestRecord, Simulator
from exporter.simulator.fleet import SimCustomer, SimSeat
from exporter.simulator.world import Shape
from exporter.vendors.datto.simseats import SeatChanges
from exporter.vendors.datto.simulator import DattoSim
from tests.conftest import ServerThread, datto_source

# The private key: it must never appear in an output, a log line or an error.
CANARY = "canary-private-5e1d07c3"
SEED = 7


@dataclass
class Vendor:
    sim: Simulator
    url: str
    config: Path

    @property
    def changes(self) -> SeatChanges:
        return self.sim.part(DattoSim).seat_changes

    def customer(self, product: str = "Office365") -> SimCustomer:
        """The first active customer of that product."""
        return next(
            c for c in self.sim.fleet.customers if c.product == product and c.status == "active"
        )

    def puts(self) -> list[RequestRecord]:
        return [r for r in self.sim.requests if r.method == "PUT"]

    def states(self, customer: SimCustomer, ids: list[str]) -> list[str]:
        by_id = {s.remote_id: s.state for s in customer.seats}
        return [by_id[i] for i in ids]


@contextmanager
def vendor(
    tmp_path: Path,
    shape: Shape = "live",
    style: str | None = None,
    cache: dict[str, Any] | None = None,
    **source: Any,
) -> Iterator[Vendor]:
    """The simulator, and a config file for it as the exporter reads it (``cache``: its
    cache section)."""
    sim = Simulator(customers=4, seats_per_customer=10, seed=SEED, shape=shape, private_key=CANARY)
    with ServerThread(sim.app()) as server:
        key_file = tmp_path / "datto_private_key"
        key_file.write_text(CANARY + "\n")
        settings = datto_source(server.url, private_key_file=str(key_file), **source)
        del settings["private_key"]
        if style is not None:
            settings["seat_change_style"] = style
        config = tmp_path / "config.yml"
        document: dict[str, Any] = {"sources": [settings]}
        if cache is not None:
            document["cache"] = cache
        config.write_text(yaml.safe_dump(document))
        yield Vendor(sim, server.url, config)


def add_seats(
    customer: SimCustomer, count: int, state: str = "Unprotected", seat_type: str = "User"
) -> list[str]:
    """``count`` more seats for the customer; their ids."""
    start = len(customer.seats)
    ids = [f"added-{start + i:04d}" for i in range(count)]
    customer.seats.extend(
        SimSeat(
            remote_id=seat_id,
            name=f"New Person {start + i}",
            main_id=f"new.person{start + i}@{customer.domain}",
            seat_type=seat_type,
            state=state,
            backup_age=None,
            added_age=3600.0,
        )
        for i, seat_id in enumerate(ids)
    )
    return ids


def set_states(customer: SimCustomer, state: str, seat_type: str | None = None) -> None:
    """Every seat (of the type) in one state, so that a test knows what it starts from."""
    for seat in customer.seats:
        if seat_type is None or seat.seat_type == seat_type:
            seat.state = state


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def no_secret(self) -> Run:
        assert CANARY not in self.out
        assert CANARY not in self.err
        return self


def seats(capsys: pytest.CaptureFixture[str], where: Vendor, command: str, *args: str | int) -> Run:
    """``saas-backup-exporter seats COMMAND --config.file ... --source datto ARGS``."""
    argv = ["seats", command, "--config.file", str(where.config), "--source", "datto"]
    code = main([*argv, *(str(a) for a in args)])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err).no_secret()


def table(out: str) -> dict[str, str]:
    """The lines of a printed table whose first column is a seat id, by that id."""
    rows = {}
    for line in out.splitlines():
        first = line.split(" ", 1)[0]
        if first.startswith("added-") or first.count("-") == 4:
            rows[first] = line
    return rows
