"""The state file against damage: corrupt and foreign files, bad rows, failing writes and
unusable paths. Nothing is lost and nothing raises."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import pytest

import exporter.state
from exporter.state import Saved, SourceMeta, StateFile
from tests.test_state import (
    META,
    SECRET_NAME,
    assert_works,
    full_part,
    moved_aside,
    small_part,
    warnings,
)


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(8192))
    # A log beside it, which must not reach the fresh file.
    path.with_name(path.name + "-wal").write_bytes(os.urandom(4096))


def _truncated(path: Path) -> None:
    state = StateFile(path)
    state.save("s", "fp", META, {f"c{i}": full_part(f"c{i}", 50) for i in range(40)}, ())
    state.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign_schema(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE dashboards (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO dashboards (body) VALUES ('{}')")
    db.close()


def _our_version_wrong_tables(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sources (name TEXT)")
        db.execute("PRAGMA user_version = 1")
    db.close()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_random_bytes, "file is not a database"),
        (_truncated, "malformed"),
        (_foreign_schema, "foreign schema"),
        (_our_version_wrong_tables, "foreign schema"),
    ],
)
def test_a_corrupt_file_is_logged_moved_aside_and_replaced(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make: object,
    reason: str,
) -> None:
    path = tmp_path / "state.db"
    assert callable(make)
    make(path)
    before = path.read_bytes()
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="exporter.state")

    state = StateFile(path)
    assert state.enabled
    assert state.load("s", "fp") is None
    state.close()

    [aside] = moved_aside(path)
    assert aside.read_bytes() == before
    [message] = warnings(caplog)
    assert message.startswith("msg=state file ignored and moved aside")
    assert f"path={path} " in message
    assert reason in message
    assert f"moved_to={aside}" in message
    assert_works(path)


def test_a_file_from_a_newer_version_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    db.close()
    caplog.set_level(logging.WARNING, logger="exporter.state")
    assert_works(path)
    assert len(moved_aside(path, "newer")) == 1
    [message] = warnings(caplog)
    assert "schema version 7 is newer than 1" in message


def _rewrite(path: Path, cid: str, data: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE parts SET data = ? WHERE customer_id = ?", (data, cid))
    db.close()


def test_unreadable_rows_are_skipped_and_logged_the_rest_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    parts = {c: full_part(c) for c in ("a", "b", "c", "d", "e", "f", "g")}
    state = StateFile(path)
    assert state.save("s", "fp", META, parts, (), replace=True)
    state.close()
    with sqlite3.connect(path) as db:
        (text,) = db.execute("SELECT data FROM parts WHERE customer_id = 'c'").fetchone()
    db.close()
    document = json.loads(text)

    _rewrite(path, "b", "{not json")
    document["part"]["records"]["seats"][1]["last_backup"] = SECRET_NAME
    _rewrite(path, "c", json.dumps(document))
    _rewrite(path, "d", json.dumps({**document, "version": 99}))
    document["part"]["records"]["seats"][1] = {"customer_id": "d", "unexpected": 1}
    _rewrite(path, "e", json.dumps(document))
    _rewrite(path, "f", json.dumps(json.loads(text) | {"version": True}))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE sources SET meta = '[]'")
    db.close()

    caplog.set_level(logging.WARNING, logger="exporter.state")
    state = StateFile(path)
    saved = state.load("s", "fp")
    state.close()
    assert saved == Saved(SourceMeta(), {"a": parts["a"], "g": parts["g"]})
    assert moved_aside(path) == []

    logged = warnings(caplog)
    assert len(logged) == 6
    assert "msg=saved source state unreadable" in logged[0]
    assert "reason=not a saved meta" in logged[0]
    skipped = {line.split("customer_id=")[1].split()[0]: line for line in logged[1:]}
    assert set(skipped) == {"b", "c", "d", "e", "f"}
    assert "reason=not JSON" in skipped["b"]
    assert "part.records.seats[1].last_backup: expected float, got str" in skipped["c"]
    assert "version is not 1" in skipped["d"]
    assert "fields missing or unknown for Seat" in skipped["e"]
    assert "version is not 1" in skipped["f"]
    assert not any("Zoë" in line or "Quoted" in line for line in logged)

    # Skipped rows are dropped, so the next start restores the same and logs only the source
    # state, which stays until the next save.
    caplog.clear()
    state = StateFile(path)
    assert state.load("s", "fp") == saved
    assert state.save("s", "fp", META, {}, ())
    assert state.load("s", "fp") == Saved(META, saved.parts)
    state.close()
    [message] = warnings(caplog)
    assert "msg=saved source state unreadable" in message


def _sqlite_error(message: str, code: int) -> sqlite3.Error:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


def test_corruption_met_while_running_starts_a_fresh_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    state = StateFile(path)
    assert state.save("s", "fp", META, {"a": small_part("a")}, (), replace=True)

    def corrupt(*args: object) -> None:
        raise _sqlite_error("database disk image is malformed", sqlite3.SQLITE_CORRUPT)

    caplog.set_level(logging.WARNING, logger="exporter.state")
    with monkeypatch.context() as patch:
        patch.setattr(StateFile, "_read", corrupt)
        assert state.load("s", "fp") is None
    [message] = warnings(caplog)
    assert "moved aside" in message
    assert "reason=database disk image is malformed" in message
    assert len(moved_aside(path)) == 1
    assert state.enabled
    # The fresh file holds none of the caller's parts: it must send them all.
    assert not state.save("s", "fp", META, {"b": small_part("b")}, ())
    parts = {"a": small_part("a"), "b": small_part("b")}
    assert state.save("s", "fp", META, parts, (), replace=True)
    assert state.load("s", "fp") == Saved(META, parts)
    state.close()


def test_a_failing_write_is_logged_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.state")
    state = StateFile(tmp_path / "state.db")
    assert state.save("s", "fp", META, {"a": small_part("a")}, (), replace=True)
    transaction = exporter.state._transaction
    failures = [_sqlite_error("database or disk is full", sqlite3.SQLITE_FULL)] * 3

    def failing(db: sqlite3.Connection) -> object:
        if failures:
            raise failures.pop()
        return transaction(db)

    monkeypatch.setattr(exporter.state, "_transaction", failing)
    assert not state.save("s", "fp", META, {"b": small_part("b")}, ())
    assert not state.save("s", "fp", META, {"c": small_part("c")}, ())
    state.prune(())
    # The file lacks b and c: until every part is sent again, it says so.
    assert not state.save("s", "fp", META, {"d": small_part("d")}, ())
    parts = {c: small_part(c) for c in "abcd"}
    assert state.save("s", "fp", META, parts, (), replace=True)
    assert state.load("s", "fp") == Saved(META, parts)
    state.close()

    lines = [r.getMessage() for r in caplog.records if r.name == "exporter.state"]
    assert len(lines) == 2
    assert lines[0].startswith("msg=state file failed, will retry action=save path=")
    assert lines[0].endswith("reason=database or disk is full")
    assert lines[1].startswith("msg=state file written again")


@pytest.mark.parametrize("where", ["under-a-file", "a-directory", "read-only-filesystem"])
def test_an_unusable_path_means_no_persistence_and_no_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.state")
    if where == "under-a-file":
        (tmp_path / "file").write_text("not a directory")
        path = tmp_path / "file" / "state.db"
    elif where == "a-directory":
        path = tmp_path / "state.db"
        path.mkdir()
    else:
        # Not even root can create a file there (a read-only directory would not stop root).
        path = Path("/proc/state.db")

    state = StateFile(path)
    assert not state.enabled
    assert state.load("s", "fp") is None
    assert not state.save("s", "fp", META, {"a": small_part("a")}, (), replace=True)
    state.prune(())
    state.close()

    [message] = warnings(caplog)
    assert message.startswith("msg=state file unusable, running without persistence")
    assert f"path={path} " in message
