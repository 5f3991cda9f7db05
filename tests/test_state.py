"""The state file on its own, on real files: round trips, incremental saves, corruption."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import exporter.state
from exporter.model import (
    ApplicationBackup,
    BackupInstance,
    BackupRun,
    Customer,
    RestoreJob,
    Seat,
    Snapshot,
)
from exporter.source import Part
from exporter.state import Saved, SourceMeta, StateFile

ROOT = Path(__file__).resolve().parent.parent
# A name no log line may carry: record contents are not for logs.
SECRET_NAME = 'Zoë "Quoted" Ltd\nsecond line'


def full_part(cid: str, seats: int = 2, version: float = 0.0) -> Part:
    """A customer holding every record type, with every field set, and some left to None."""
    records = Snapshot(
        customers=(Customer(cid, SECRET_NAME, "example.com", "m365", "active", 10, 3, 2, 1, 1e12),),
        seats=(
            *(
                Seat(cid, f"s{i}", "Seat", "user", "licensed", 1.7e9 + i, True, i % 2 == 0)
                for i in range(seats)
            ),
            Seat(cid, "bare", "Shared", "shared_mailbox", "unknown"),
        ),
        applications=(
            ApplicationBackup(
                cid, "exchange", 1.7e9, "success", 5, 4, 3, 1, 1.6e9, 123.5, "PREPARE", True, "7h"
            ),
            ApplicationBackup(cid, "teams", None, "unknown"),
        ),
        instances=(
            BackupInstance(cid, "i1", "Instance", "definition", 1.7e9 + version, 86400.0),
            BackupInstance(cid, "i2", "Other", "definition"),
        ),
        active_backups=(BackupRun(cid, "i1", 1.7e9, None, "running"),),
        finished_backups=(BackupRun(cid, "i1", 1.6e9, 1.6e9 + 60.25, "success"),),
        restore_jobs=(
            RestoreJob("j1", cid, "restore", "failed", 1.7e9, 1.7e9 + 5, 10, 2),
            RestoreJob("j2", cid, "export", "pending", None, None),
        ),
        customer_errors={cid: "seats: timed out"},
        oldest_data=0.0,
    )
    return Part(cid, records, oldest=1.7e9 - 30.5, due=float("inf"), error="seats: timed out")


def small_part(cid: str, note: str = "v1") -> Part:
    customer = Customer(cid, note, "example.com", "m365", "active")
    return Part(cid, Snapshot(customers=(customer,)), oldest=1_000.0, due=2_000.0)


META = SourceMeta(
    listed=True,
    up=True,
    last_success=1.7e9,
    last_attempt=1.7e9 + 5,
    error="listing: 503",
    listing_fetched_at=1.7e9 - 60,
    listing_due=1.7e9 + 840,
    budget={"remaining": 42.0, "resets_at": None, "window": 3600.0},
)


def moved_aside(path: Path, label: str = "corrupt") -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.{label}-*"))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "exporter.state" and r.levelno == logging.WARNING
    ]


def assert_works(path: Path) -> None:
    state = StateFile(path)
    try:
        assert state.enabled
        assert state.save("s", "fp", META, {"a": small_part("a")}, (), replace=True)
        assert state.load("s", "fp") == Saved(META, {"a": small_part("a")})
    finally:
        state.close()


def test_round_trip_of_every_record_type_and_the_metadata(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    parts = {cid: full_part(cid) for cid in ("zeta", "alpha", "mid")}
    other = {"alpha": small_part("alpha", "another source")}
    state = StateFile(path)
    assert state.save("datto", "fp", META, parts, (), replace=True)
    assert state.save("cloudally", "fp2", SourceMeta(), other, (), replace=True)
    state.close()

    state = StateFile(path)
    saved = state.load("datto", "fp")
    assert saved == Saved(META, parts)
    assert list(saved.parts) == ["zeta", "alpha", "mid"]
    records = saved.parts["zeta"].records
    assert type(records.seats) is tuple
    assert type(records.customers[0].backup_ratio) is float
    assert records.customer_errors == {"zeta": "seats: timed out"}
    assert saved.parts["zeta"].due == float("inf")
    assert state.load("cloudally", "fp2") == Saved(SourceMeta(), other)
    assert state.load("never-saved", "fp") is None
    state.close()


def test_incremental_save_writes_only_the_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    state = StateFile(path)
    assert state.save("s", "fp", META, {c: small_part(c) for c in "abc"}, (), replace=True)

    dumped: list[str] = []
    dump = exporter.state._dump

    def counting(key: str, value: object) -> str:
        dumped.append(key)
        return dump(key, value)

    monkeypatch.setattr(exporter.state, "_dump", counting)
    later = SourceMeta(listed=True, up=False, error="timed out")
    changed = {"b": small_part("b", "v2"), "d": small_part("d")}
    assert state.save("s", "fp", later, changed, ["c"])
    assert dumped.count("part") == 2
    state.close()

    saved = StateFile(path).load("s", "fp")
    assert saved is not None
    assert saved.meta == later
    # An updated customer keeps its place, a new one goes last.
    assert saved.parts == {"a": small_part("a"), "b": small_part("b", "v2"), "d": small_part("d")}
    assert list(saved.parts) == ["a", "b", "d"]


def test_a_save_says_when_it_needs_every_part(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.db")
    # Nothing loaded: the file may hold less than the caller has.
    assert not state.save("s", "fp", META, {"a": small_part("a")}, ())
    assert state.save("s", "fp", META, {"a": small_part("a")}, (), replace=True)
    assert state.save("s", "fp", META, {"b": small_part("b")}, ())
    assert state.load("t", "fp") is None
    assert state.save("t", "fp", META, {"a": small_part("a")}, ())
    state.close()
    assert not state.save("s", "fp", META, {}, ())
    assert state.load("s", "fp") is None


def test_another_fingerprint_is_not_restored_and_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.state")
    path = tmp_path / "state.db"
    state = StateFile(path)
    assert state.save("s", "fp-a", META, {c: small_part(c) for c in "ab"}, (), replace=True)
    assert state.load("s", "fp-b") is None
    assert any("not restored" in r.getMessage() for r in caplog.records)

    assert state.save("s", "fp-b", SourceMeta(), {"x": small_part("x")}, ())
    assert state.load("s", "fp-a") is None
    assert state.load("s", "fp-b") == Saved(SourceMeta(), {"x": small_part("x")})
    state.close()


def test_prune_forgets_sources_no_longer_configured(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state = StateFile(path)
    for name in ("s1", "s2", "s3"):
        assert state.save(name, "fp", META, {"a": small_part("a")}, (), replace=True)
    state.prune({"s2"})
    state.close()

    state = StateFile(path)
    assert state.load("s1", "fp") is None
    assert state.load("s3", "fp") is None
    assert state.load("s2", "fp") == Saved(META, {"a": small_part("a")})
    state.prune(())
    assert state.load("s2", "fp") is None
    state.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM parts").fetchone() == (0,)


def test_a_thousand_customers_of_fifty_seats(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    parts = {f"customer-{i:04}": full_part(f"customer-{i:04}", 50) for i in range(1000)}
    state = StateFile(path)
    assert state.save("datto", "fp", META, parts, (), replace=True)
    state.close()

    state = StateFile(path)
    assert state.load("datto", "fp") == Saved(META, parts)
    state.close()


def test_usable_from_worker_threads(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.db")

    async def main() -> Saved | None:
        parts = {"a": small_part("a")}
        await asyncio.gather(
            *(
                asyncio.to_thread(state.save, f"s{i}", "fp", META, parts, (), replace=True)
                for i in range(8)
            )
        )
        return await asyncio.to_thread(state.load, "s3", "fp")

    assert asyncio.run(main()) == Saved(META, {"a": small_part("a")})
    state.close()


WRITER = """
import sys
from pathlib import Path

from exporter.model import Customer, Snapshot
from exporter.source import Part
from exporter.state import SourceMeta, StateFile

state = StateFile(Path(sys.argv[1]))
n = 0
while True:
    n += 1
    parts = {
        f"c{i}": Part(f"c{i}", Snapshot((Customer(f"c{i}", "x" * 500, "d", "p", "active"),)), n, n)
        for i in range(300)
    }
    state.save("s", "fp", SourceMeta(last_success=float(n)), parts, (), replace=True)
    print(n, flush=True)
"""


def test_a_writer_killed_mid_save_leaves_the_last_whole_save(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    try:
        for line in writer.stdout:
            if int(line) >= 5:
                break
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()

    state = StateFile(path)
    saved = state.load("s", "fp")
    state.close()
    assert saved is not None
    assert len(saved.parts) == 300
    assert saved.meta.last_success is not None
    assert saved.meta.last_success >= 5
    assert {part.oldest for part in saved.parts.values()} == {saved.meta.last_success}
