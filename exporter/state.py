"""Warm restarts: each source's last good data, kept in one SQLite file.

Why SQLite: it is in the standard library and its commits are atomic, so a reader sees a
whole save or the one before it, never half of each. The journal is a write-ahead log (WAL):
a save appends to ``<file>-wal`` and leaves the committed pages alone until a checkpoint
copies them over, so a crash or a kill in the middle of a save leaves the previous state
readable. ``synchronous=NORMAL`` then spares an fsync per save; a power cut may cost the last
few saves, never the file.

Why JSON and not pickle: unpickling can run code, and a state file is only data found on a
disk. Each row is a JSON document of the model's dataclasses with a ``version`` key (the file
carries the same number in ``PRAGMA user_version``), checked field by field on the way back:
a row that does not fit is skipped and logged, the rest restored.

A state file is a convenience, never a reason to stop: a file that is corrupt or not ours is
moved aside to ``<name>.corrupt-<unix time>`` (``.newer-`` if a later version wrote it: nothing
is lost) and a fresh one started; when no file can be used, the exporter runs without one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import time
import types
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Union, get_args, get_origin, get_type_hints

from exporter.source import Part

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1

_TABLES: Final = {
    "sources": ("name", "fingerprint", "meta"),
    "parts": ("source", "customer_id", "seq", "data"),
}
_CREATE: Final = (
    "CREATE TABLE sources (name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, meta TEXT NOT NULL)",
    "CREATE TABLE parts (source TEXT NOT NULL, customer_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " data TEXT NOT NULL, PRIMARY KEY (source, customer_id))",
    "CREATE INDEX parts_order ON parts (source, seq)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_UPSERT_SOURCE: Final = (
    "INSERT INTO sources (name, fingerprint, meta) VALUES (?, ?, ?) ON CONFLICT (name)"
    " DO UPDATE SET fingerprint = excluded.fingerprint, meta = excluded.meta"
)
# A part saved before keeps its place (seq); a new one goes last.
_UPSERT_PART: Final = (
    "INSERT INTO parts (source, customer_id, data, seq) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (source, customer_id) DO UPDATE SET data = excluded.data"
)
_DELETE_PART: Final = "DELETE FROM parts WHERE source = ? AND customer_id = ?"
_COLUMNS: Final = (
    "SELECT t.name, c.name FROM sqlite_master AS t, pragma_table_info(t.name) AS c"
    " WHERE t.type = 'table' ORDER BY t.name, c.cid"
)
_CORRUPT_CODES: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


@dataclass(frozen=True, slots=True)
class SourceMeta:
    """What a source knew besides its customers' parts."""

    listed: bool = False
    up: bool = False
    last_success: float | None = None
    last_attempt: float | None = None
    error: str | None = None
    listing_fetched_at: float | None = None
    listing_due: float | None = None
    # The pacer's window state, opaque here.
    budget: dict[str, float | None] = field(default_factory=dict)
    customer_list: dict[str, str] = field(default_factory=dict)  # unfiltered: id -> name


@dataclass(frozen=True, slots=True)
class Saved:
    """A source as last saved: its metadata and its parts, in the order they were first saved."""

    meta: SourceMeta
    parts: dict[str, Part]


class _Invalid(Exception):
    """A stored value that does not fit the schema. ``where`` grows as the error leaves nested
    values, so that building a path costs nothing while the values are good."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.where: list[str] = []

    def __str__(self) -> str:
        path = "".join(reversed(self.where)).lstrip(".")
        return f"{path}: {self.args[0]}" if path else str(self.args[0])


class _NotOurs(Exception):
    """The file is corrupt, or holds something other than this version's schema."""

    def __init__(self, reason: str, label: str = "corrupt") -> None:
        super().__init__(reason)
        self.label = label


_Decode = Callable[[Any], Any]
_SCALARS: Final = (str, int, float, bool)
# The types a field takes as they come from JSON, with no call to check them: most of a
# load's values, so that a large load stays fast.
_EXACT: Final[dict[Any, tuple[type, ...]]] = {
    **{kind: (kind,) for kind in _SCALARS},
    **{kind | None: (kind, type(None)) for kind in _SCALARS},
}
# The fields of every dataclass the schema holds, in order: all the encoder needs to know.
_FIELDS: dict[type, tuple[str, ...]] = {}


def _require(kind: type, value: object) -> None:
    if type(value) is not kind:
        # The type only: the value may be a customer's data.
        raise _Invalid(f"expected {kind.__name__}, got {type(value).__name__}")


def _scalar(kind: type) -> _Decode:
    def decode(value: Any) -> Any:
        # Exact types, as bool is an int to Python; but a float field that held an int was
        # written as one.
        if kind is float and type(value) is int:
            with suppress(OverflowError):
                return float(value)
        _require(kind, value)
        return value

    return decode


def _optional(inner: _Decode) -> _Decode:
    return lambda value: None if value is None else inner(value)


def _each(kind: type, item: _Decode) -> _Decode:
    """An array read into a tuple, or an object into a dict, each value read by ``item``."""

    def decode(value: Any) -> Any:
        _require(kind, value)
        out = {}
        for index, (key, each) in enumerate(value.items() if kind is dict else enumerate(value)):
            try:
                out[key] = item(each)
            except _Invalid as exc:
                exc.where.append(f"[{index}]")  # the position: a key may be a customer's data
                raise
        return out if kind is dict else tuple(out.values())

    return decode


def _record(cls: type) -> _Decode:
    hints, every = get_type_hints(cls), dataclasses.fields(cls)
    fields = [(f.name, _EXACT.get(hints[f.name], ()), _decoder(hints[f.name])) for f in every]
    _FIELDS[cls] = names = tuple(f.name for f in every)
    known = frozenset(names)
    missing = dataclasses.MISSING
    required = {f.name for f in every if f.default is missing and f.default_factory is missing}

    def decode(value: Any) -> Any:
        _require(dict, value)
        # A field missing with a default is taken as such: a model may grow new ones.
        if not required <= value.keys() <= known:
            raise _Invalid(f"fields missing or unknown for {cls.__name__}")
        kwargs = {}
        for name, exact, item in fields:
            if name not in value:
                continue
            each = value[name]
            if type(each) in exact:
                kwargs[name] = each
                continue
            try:
                kwargs[name] = item(each)
            except _Invalid as exc:
                exc.where.append(f".{name}")
                raise
        return cls(**kwargs)

    return decode


def _decoder(hint: Any) -> _Decode:
    """A strict reader for one annotated type, built at import from the dataclasses themselves,
    so that a field added to the model is saved and checked with no change here."""
    origin, args = get_origin(hint), get_args(hint)
    rest = [arg for arg in args if arg is not type(None)]
    if origin in (Union, types.UnionType) and len(rest) == 1 and len(args) == 2:
        return _optional(_decoder(rest[0]))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _each(list, _decoder(args[0]))
    if origin is dict and len(args) == 2 and args[0] is str:
        return _each(dict, _decoder(args[1]))
    if hint in _SCALARS:
        return _scalar(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record(hint)
    raise TypeError(f"the state file cannot hold {hint!r}")


_decode_part: Final = _decoder(Part)
_decode_meta: Final = _decoder(SourceMeta)


def _encode(value: object) -> object:
    names = _FIELDS.get(type(value))
    if names is None:
        raise TypeError(f"the state file cannot hold a {type(value).__name__}")
    return {name: getattr(value, name) for name in names}


def _dump(key: str, value: object) -> str:
    # The C encoder does the lists and scalars; only the dataclasses come back to Python.
    document = {"version": SCHEMA_VERSION, key: value}
    return json.dumps(document, default=_encode, separators=(",", ":"))


def _load(data: bytes, key: str, decode: _Decode) -> Any:
    try:
        document = json.loads(data)
    except (TypeError, ValueError, RecursionError):
        raise _Invalid("not JSON") from None
    if type(document) is not dict or document.keys() != {"version", key}:
        raise _Invalid(f"not a saved {key}")
    version = document["version"]
    if type(version) is not int or version != SCHEMA_VERSION:
        raise _Invalid(f"version is not {SCHEMA_VERSION}")
    try:
        return decode(document[key])
    except _Invalid as exc:
        exc.where.append(key)
        raise


def _corrupt(exc: BaseException) -> bool:
    if isinstance(exc, _NotOurs):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _CORRUPT_CODES


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so that a save never fails halfway for a lock.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _connect(path: Path) -> sqlite3.Connection:
    """The file opened and checked, or made when it is new or empty."""
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        tables: dict[str, tuple[str, ...]] = {}
        for table, column in db.execute(_COLUMNS):
            tables[table] = (*tables.get(table, ()), column)
        if version > SCHEMA_VERSION:
            raise _NotOurs(f"schema version {version} is newer than {SCHEMA_VERSION}", "newer")
        if version == 0 and not tables:
            db.execute("PRAGMA journal_mode=WAL")
            with _transaction(db):
                for statement in _CREATE:
                    db.execute(statement)
        elif version != SCHEMA_VERSION or tables != _TABLES:
            raise _NotOurs("not an exporter state file (foreign schema)")
        else:
            # Corrupt pages are otherwise met only when a load reads them.
            problems = [text for (text,) in db.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise _NotOurs(f"integrity check failed: {problems[0]}")
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        db.close()
        raise
    return db


class StateFile:
    """The state file of every source. Synchronous: one thread at a time may use it (the
    caller runs it through ``asyncio.to_thread``), which a lock makes sure of.

    No I/O or database error reaches the caller: a failed load returns None, a failed save
    False, and both are logged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Sources whose stored parts are all the caller has: loaded or saved in full, and
        # every save since written. A save of any other source asks for all its parts.
        self._synced: set[str] = set()
        self._failing = False
        with self._lock:
            self._db = self._open()

    @property
    def enabled(self) -> bool:
        """False when the file could not be used: the exporter runs without persistence."""
        return self._db is not None

    def load(self, source: str, fingerprint: str) -> Saved | None:
        """The source as last saved; None when it never was, when it was saved under another
        fingerprint (the config points elsewhere now), or when the file cannot be read."""
        with self._lock:
            if self._db is None:
                return None
            try:
                saved = self._read(self._db, source, fingerprint)
            except sqlite3.Error as exc:
                self._failed("load", exc, source)
                return None
            self._synced.add(source)
            return saved

    def save(
        self,
        source: str,
        fingerprint: str,
        meta: SourceMeta,
        upserts: Mapping[str, Part],
        deletes: Collection[str],
        *,
        replace: bool = False,
    ) -> bool:
        """Write the parts that changed and drop those of customers that left (``deletes``
        first), in one transaction. ``replace``: ``upserts`` are all the parts there are. A
        source saved under another fingerprint is replaced whole.

        True when the file holds every part the caller has; False when it may not (no
        persistence, a failed write, a file started afresh): then send every part with
        ``replace`` on a later save."""
        if self._db is None:
            return False  # spares the encoding; checked again under the lock
        rows = [(source, cid, _dump("part", part)) for cid, part in upserts.items()]
        meta_json = _dump("meta", meta)
        with self._lock:
            if self._db is None:
                return False
            db = self._db
            try:
                with _transaction(db):
                    query = "SELECT fingerprint FROM sources WHERE name = ?"
                    stored = db.execute(query, (source,)).fetchone()
                    if replace or stored is None or stored[0] != fingerprint:
                        db.execute("DELETE FROM parts WHERE source = ?", (source,))
                    db.execute(_UPSERT_SOURCE, (source, fingerprint, meta_json))
                    db.executemany(_DELETE_PART, [(source, cid) for cid in deletes])
                    query = "SELECT COALESCE(MAX(seq), 0) FROM parts WHERE source = ?"
                    (last,) = db.execute(query, (source,)).fetchone()
                    db.executemany(_UPSERT_PART, [(*r, last + n) for n, r in enumerate(rows, 1)])
            except sqlite3.Error as exc:
                self._failed("save", exc, source)
                return False
            self._succeeded()
            if replace:
                self._synced.add(source)
            return source in self._synced

    def prune(self, keep: Collection[str]) -> None:
        """Forget every source not in ``keep`` (no longer configured)."""
        with self._lock:
            if self._db is None:
                return
            db = self._db
            try:
                with _transaction(db):
                    query = "SELECT name FROM sources UNION SELECT source FROM parts"
                    gone = [(name,) for (name,) in db.execute(query) if name not in keep]
                    db.executemany("DELETE FROM parts WHERE source = ?", gone)
                    db.executemany("DELETE FROM sources WHERE name = ?", gone)
            except sqlite3.Error as exc:
                self._failed("prune", exc, None)
                return
            self._succeeded()
            self._synced.difference_update(name for (name,) in gone)

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
            self._synced.clear()
            if db is not None:
                with suppress(sqlite3.Error):
                    db.close()

    def _read(self, db: sqlite3.Connection, source: str, fingerprint: str) -> Saved | None:
        query = "SELECT fingerprint, CAST(meta AS BLOB) FROM sources WHERE name = ?"
        row = db.execute(query, (source,)).fetchone()
        if row is None:
            return None
        if row[0] != fingerprint:
            message = "saved for another vendor, address or account: not restored"
            logger.info("msg=%s source=%s path=%s", message, source, str(self.path))
            return None
        try:
            meta = _load(row[1], "meta", _decode_meta)
        except _Invalid as exc:
            self._warn("saved source state unreadable, restoring its customers", exc, source=source)
            meta = SourceMeta()
        parts: dict[str, Part] = {}
        skipped: list[tuple[str, str]] = []
        query = "SELECT customer_id, CAST(data AS BLOB) FROM parts WHERE source = ? ORDER BY seq"
        for cid, data in db.execute(query, (source,)).fetchall():
            try:
                part = _load(data, "part", _decode_part)
                if part.customer_id != cid:
                    raise _Invalid("customer id differs from its row's")
            except _Invalid as exc:
                self._warn(
                    "saved customer unreadable, skipped", exc, source=source, customer_id=cid
                )
                skipped.append((source, cid))
            else:
                parts[cid] = part
        # Dropped, so that the file holds what the caller now has and is not logged again.
        if skipped:
            with suppress(sqlite3.Error), _transaction(db):
                db.executemany(_DELETE_PART, skipped)
        return Saved(meta, parts)

    def _open(self, bad: BaseException | None = None) -> sqlite3.Connection | None:
        """The file, or a fresh one in place of a ``bad`` (corrupt) one; None when neither
        can be had."""
        try:
            if bad is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    return _connect(self.path)
                except (sqlite3.Error, _NotOurs) as exc:
                    if not _corrupt(exc):
                        raise
                    bad = exc
            self._set_aside(bad)
            return _connect(self.path)
        except (sqlite3.Error, OSError, _NotOurs) as exc:
            self._warn("state file unusable, running without persistence", exc)
            return None

    def _set_aside(self, exc: BaseException) -> None:
        label = exc.label if isinstance(exc, _NotOurs) else "corrupt"
        stamp, count = int(time.time()), 1
        target = self.path.with_name(f"{self.path.name}.{label}-{stamp}")
        while target.exists():
            count += 1
            target = self.path.with_name(f"{self.path.name}.{label}-{stamp}-{count}")
        self.path.rename(target)
        # The log goes with its file: left here, SQLite would replay it into the fresh one.
        for suffix in ("-wal", "-shm"):
            sidecar = self.path.with_name(self.path.name + suffix)
            if sidecar.exists():
                sidecar.rename(target.with_name(target.name + suffix))
        self._warn("state file ignored and moved aside, starting afresh", exc, moved_to=target)

    def _failed(self, action: str, exc: sqlite3.Error, source: str | None) -> None:
        if _corrupt(exc) and self._db is not None:
            with suppress(sqlite3.Error):
                self._db.close()
            self._synced.clear()
            self._db = self._open(exc)
            return
        if source is not None:
            self._synced.discard(source)
        if not self._failing:
            self._failing = True
            self._warn("state file failed, will retry", exc, action=action)

    def _succeeded(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("msg=%s path=%s", "state file written again", str(self.path))

    def _warn(self, message: str, exc: BaseException, **fields: object) -> None:
        """``msg=... <fields> path=... reason=...``, in logfmt: the formatter quotes the values."""
        values = [*map(str, fields.values()), str(self.path), _reason(exc)]
        keys = " ".join(f"{key}=%s" for key in [*fields, "path", "reason"])
        logger.warning("msg=%s " + keys, message, *values)
