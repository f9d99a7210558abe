"""Durable storage: the small interface the rest of the gateway needs, and its SQLite implementation.

Everything above this module (pipeline, ledger, tickets, rates, alerts, api) talks
to a `Tx`: `execute`, `one` and `all` with `?` parameters and SQL that SQLite and
PostgreSQL both understand (ON CONFLICT, RETURNING, no engine-only functions), and
`lock` for work that several gateway instances must not interleave. The PostgreSQL
store (`gateway.store.postgres`) provides the same calls over the same tables.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

__all__ = ["Device", "Tx", "Store", "SQLiteStore", "SCHEMA_VERSION", "SCHEMA", "MIGRATIONS", "StoreError", "Conflict",
           "open_store", "retrying"]

SCHEMA_VERSION = 7
KEY_CACHE_S = 30.0
"""A key changed by `trace-gateway device add` in another process is used within this many seconds."""


class StoreError(RuntimeError):
    """A database the gateway cannot use (e.g. made by a newer version)."""


class Conflict(StoreError):
    """Another gateway instance changed the same rows at the same time; the transaction was rolled back.
    Run it again (`retrying`)."""


CONFLICT_RETRIES = 8


@dataclass(frozen=True, kw_only=True)
class Device:
    """A registered counter device and where it stands."""

    device: str
    key: bytes = field(repr=False)
    """The 32-byte COSE_Mac0 key; never logged."""
    terminal: str
    """The counter (POS terminal) it serves; terminal ids are unique across institutions."""
    institution: str
    """定点医药机构 code (12 characters on the platform)."""
    institution_type: str = "pharmacy"
    """"pharmacy" or "hospital"."""
    region: str = ""
    """Administrative division code, e.g. 440300."""


class Tx(Protocol):
    """One database transaction; `?` marks parameters."""

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    def write(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        """Run a statement whose outcome the caller does not read: PostgreSQL sends it on without waiting for
        the answer (pipeline mode), so a batch's writes cost no round trips; an error still fails the
        transaction."""
        ...

    def one(self, sql: str, parameters: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def all(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def lock(self, keys: Iterable[str]) -> None:
        """Hold these keys until the transaction ends, so no other gateway instance works on them meanwhile.
        Take all of a transaction's keys in one call, first (the store orders them: no deadlock)."""
        ...


class Store(Protocol):
    """What the gateway needs from a database."""

    def device_key(self, device: str) -> bytes | None:
        """The registered key, from a cache refreshed when a device is (re-)registered."""
        ...

    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction: committed when the block ends, rolled back when it raises."""
        ...

    def reading(self) -> AbstractContextManager[Tx]:
        """A consistent read-only view for queries (API, CLI) that never blocks ingest."""
        ...

    def add_device(self, device: Device) -> None: ...

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


Result = TypeVar("Result")


def retrying(work: Callable[[], Result]) -> Result:
    """Run `work` (one or more whole transactions) again while it meets a `Conflict` with another instance."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            return work()
        except Conflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


def open_store(location: str, *, durable: bool = True) -> Store:
    """The store at `location`: a postgresql:// URL, otherwise the path of a SQLite file."""
    if location.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore

        return PostgresStore(location)
    return SQLiteStore(location, durable=durable)


MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE events ADD COLUMN instance TEXT NOT NULL DEFAULT ''"],
    3: ["CREATE TABLE quarantine_dropped (reason TEXT PRIMARY KEY, messages INTEGER NOT NULL, times INTEGER NOT NULL, "
        "bytes INTEGER NOT NULL)"],
    4: ["ALTER TABLE outbox ADD COLUMN live_bchno TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE outbox ADD COLUMN ref_bchno TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE outbox ADD COLUMN regroup INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE outbox ADD COLUMN uploaded INTEGER NOT NULL DEFAULT 0",
        "UPDATE outbox SET live_bchno = bchno, uploaded = 1 WHERE state = 'done'",
        "CREATE INDEX outbox_by_live ON outbox (live_bchno) WHERE live_bchno <> ''",
        "CREATE INDEX outbox_by_ref ON outbox (ref_bchno) WHERE ref_bchno <> ''",
        "ALTER TABLE ticket_lines ADD COLUMN rows_made INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX events_by_line ON events (line_id) WHERE line_id IS NOT NULL",
        "ALTER TABLE requests ADD COLUMN withdraws TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX requests_by_withdrawn ON requests (withdraws) WHERE withdraws <> ''"],
    5: ["ALTER TABLE rate_hours ADD COLUMN swapped_scans INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE sign_ins (institution TEXT PRIMARY KEY, sign_no TEXT NOT NULL, signed_ms INTEGER NOT NULL)",
        "CREATE TABLE withdrawals (id INTEGER PRIMARY KEY, bchno TEXT NOT NULL, institution TEXT NOT NULL, "
        "infno TEXT NOT NULL, reason TEXT NOT NULL, operator TEXT NOT NULL, state TEXT NOT NULL, request_id INTEGER, "
        "error TEXT NOT NULL DEFAULT '', asked_ms INTEGER NOT NULL, changed_ms INTEGER NOT NULL)",
        "CREATE INDEX withdrawals_by_state ON withdrawals (state)",
        "CREATE INDEX withdrawals_by_bchno ON withdrawals (bchno)",
        "CREATE TABLE adjustments (id INTEGER PRIMARY KEY, institution TEXT NOT NULL, number TEXT NOT NULL, "
        "digest BLOB NOT NULL, chg_type TEXT NOT NULL, list_code TEXT NOT NULL, codes TEXT NOT NULL, "
        "count TEXT NOT NULL, split INTEGER NOT NULL, price TEXT NOT NULL, time_ms INTEGER NOT NULL, "
        "operator TEXT NOT NULL, memo TEXT NOT NULL, state TEXT NOT NULL, request_id INTEGER, "
        "bchno TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', received_ms INTEGER NOT NULL, "
        "changed_ms INTEGER NOT NULL, UNIQUE (institution, number))",
        "CREATE INDEX adjustments_by_state ON adjustments (state)"],
    6: ["CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE, "
        "created_ms INTEGER NOT NULL, revoked_ms INTEGER NOT NULL DEFAULT 0)",
        "ALTER TABLE alerts ADD COLUMN changed_by TEXT NOT NULL DEFAULT ''",
        "CREATE TABLE commands (id INTEGER PRIMARY KEY, device TEXT NOT NULL, command_id INTEGER NOT NULL, "
        "kind TEXT NOT NULL, argument TEXT NOT NULL, issued_by TEXT NOT NULL, issued_ms INTEGER NOT NULL, "
        "state TEXT NOT NULL, sent_ms INTEGER NOT NULL DEFAULT 0, sent_by TEXT NOT NULL DEFAULT '', "
        "answer_ms INTEGER NOT NULL DEFAULT 0, result TEXT NOT NULL DEFAULT '', answer TEXT NOT NULL DEFAULT '', "
        "device_last_id INTEGER NOT NULL DEFAULT 0, answer_signed BLOB, UNIQUE (device, command_id))",
        "CREATE INDEX commands_queued ON commands (issued_ms) WHERE state = 'queued'",
        "CREATE INDEX commands_sent ON commands (sent_ms) WHERE state = 'sent'"],
    7: ["ALTER TABLE ticket_lines ADD COLUMN stood INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE events ADD COLUMN stands_for INTEGER",
        "CREATE INDEX events_loose ON events (terminal, list_code, verdict, event_ms) "
        "WHERE ticket_id IS NULL AND err = 0 AND op IN (1, 6) AND ticket = ''",
        "CREATE INDEX events_by_stand ON events (stands_for) WHERE stands_for IS NOT NULL",
        "CREATE INDEX events_beyond_lines ON events (ticket_id) "
        "WHERE ticket_id IS NOT NULL AND line_id IS NULL AND stands_for IS NULL"],
}
"""Version -> the statements (SQL both engines run) that bring a database from the version before to it."""

SCHEMA = """
CREATE TABLE devices (
    device TEXT PRIMARY KEY, key BLOB NOT NULL, terminal TEXT NOT NULL, institution TEXT NOT NULL,
    institution_type TEXT NOT NULL, region TEXT NOT NULL);
CREATE TABLE device_state (
    device TEXT PRIMARY KEY, acked_seq INTEGER NOT NULL DEFAULT 0, max_seq INTEGER NOT NULL DEFAULT 0,
    stored INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
    last_event_ms INTEGER NOT NULL DEFAULT 0, online INTEGER NOT NULL DEFAULT 0, status_ms INTEGER NOT NULL DEFAULT 0,
    offline_since_ms INTEGER NOT NULL DEFAULT 0,
    firmware TEXT NOT NULL DEFAULT '', uptime_s INTEGER NOT NULL DEFAULT 0, backlog INTEGER NOT NULL DEFAULT 0,
    free_heap INTEGER NOT NULL DEFAULT 0, clock INTEGER NOT NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0,
    boot INTEGER NOT NULL DEFAULT 0, alarms INTEGER NOT NULL DEFAULT 0, mode INTEGER NOT NULL DEFAULT 0,
    journal_used INTEGER NOT NULL DEFAULT 0, journal_capacity INTEGER NOT NULL DEFAULT 0);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, received_ms INTEGER NOT NULL,
    signed BLOB NOT NULL, boot INTEGER NOT NULL, device_time_ms INTEGER NOT NULL, clock INTEGER NOT NULL,
    event_ms INTEGER NOT NULL, terminal TEXT NOT NULL, institution TEXT NOT NULL,
    op INTEGER NOT NULL, kind INTEGER NOT NULL, code TEXT NOT NULL, pid TEXT NOT NULL, serial TEXT NOT NULL,
    lot TEXT NOT NULL, expiry TEXT NOT NULL, made TEXT NOT NULL, err INTEGER NOT NULL, ticket TEXT NOT NULL,
    split_qty INTEGER NOT NULL,
    list_code TEXT NOT NULL, verdict INTEGER NOT NULL, ticket_id INTEGER, line_id INTEGER,
    matching INTEGER NOT NULL DEFAULT 0, UNIQUE (device, seq));
CREATE INDEX events_by_code ON events (code) WHERE err = 0;
CREATE INDEX events_unmatched ON events (terminal, event_ms) WHERE ticket_id IS NULL AND err = 0 AND op IN (1, 6);
CREATE INDEX events_by_ticket ON events (terminal, ticket) WHERE ticket_id IS NULL AND ticket <> '';
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL, topic TEXT NOT NULL, device TEXT NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, message BLOB NOT NULL, digest BLOB NOT NULL UNIQUE,
    times INTEGER NOT NULL DEFAULT 1, last_ms INTEGER NOT NULL);
CREATE INDEX quarantine_by_device ON quarantine (device, reason, last_ms);
CREATE TABLE products (
    pid TEXT PRIMARY KEY, list_code TEXT NOT NULL, name TEXT NOT NULL, pack_size INTEGER NOT NULL,
    code_required INTEGER NOT NULL);
CREATE INDEX products_by_list_code ON products (list_code);
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY, terminal TEXT NOT NULL, institution TEXT NOT NULL, number TEXT NOT NULL,
    time_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, digest BLOB NOT NULL, platform TEXT NOT NULL,
    UNIQUE (terminal, number));
CREATE INDEX tickets_by_time ON tickets (terminal, time_ms);
CREATE TABLE ticket_lines (
    id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL, line_no INTEGER NOT NULL, list_code TEXT NOT NULL,
    quantity INTEGER NOT NULL, split INTEGER NOT NULL, required INTEGER NOT NULL, needed INTEGER NOT NULL,
    scans INTEGER NOT NULL DEFAULT 0, checked INTEGER NOT NULL DEFAULT 0, due_ms INTEGER NOT NULL);
CREATE INDEX ticket_lines_by_ticket ON ticket_lines (ticket_id);
CREATE INDEX ticket_lines_due ON ticket_lines (due_ms) WHERE checked = 0;
CREATE TABLE codes (
    code TEXT PRIMARY KEY, whole_net INTEGER NOT NULL, split_net INTEGER NOT NULL, sales INTEGER NOT NULL,
    last_event INTEGER NOT NULL, last_institution TEXT NOT NULL, last_type TEXT NOT NULL, last_region TEXT NOT NULL,
    last_ms INTEGER NOT NULL);
CREATE TABLE code_inbound (code TEXT NOT NULL, institution TEXT NOT NULL, PRIMARY KEY (code, institution));
CREATE TABLE stock (
    institution TEXT NOT NULL, pid TEXT NOT NULL, inbound INTEGER NOT NULL DEFAULT 0, sold INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (institution, pid));
CREATE TABLE rate_hours (
    institution TEXT NOT NULL, terminal TEXT NOT NULL, hour INTEGER NOT NULL,
    scans INTEGER NOT NULL DEFAULT 0, valid_scans INTEGER NOT NULL DEFAULT 0, sale_scans INTEGER NOT NULL DEFAULT 0,
    duplicate_sales INTEGER NOT NULL DEFAULT 0, matched_scans INTEGER NOT NULL DEFAULT 0,
    mismatched_scans INTEGER NOT NULL DEFAULT 0, units_required INTEGER NOT NULL DEFAULT 0,
    units_covered INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL DEFAULT 0, uploaded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (institution, terminal, hour));
CREATE INDEX rate_hours_by_hour ON rate_hours (hour);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL,
    institution TEXT NOT NULL, terminal TEXT NOT NULL, device TEXT NOT NULL, subject TEXT NOT NULL,
    detail TEXT NOT NULL, count INTEGER NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
    changed_ms INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '', events TEXT NOT NULL, tickets TEXT NOT NULL);
CREATE INDEX alerts_live ON alerts (type, subject) WHERE state <> 'resolved';
CREATE INDEX alerts_by_state ON alerts (state, last_ms);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL UNIQUE, institution TEXT NOT NULL, infno TEXT NOT NULL,
    state TEXT NOT NULL, ready_ms INTEGER NOT NULL, request_id INTEGER, bchno TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '', changed_ms INTEGER NOT NULL);
CREATE INDEX outbox_pending ON outbox (ready_ms) WHERE state = 'pending';
CREATE INDEX outbox_by_state ON outbox (state);
CREATE INDEX outbox_by_request ON outbox (request_id);
CREATE TABLE requests (
    id INTEGER PRIMARY KEY, institution TEXT NOT NULL, infno TEXT NOT NULL, msgid TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL,
    lease_until_ms INTEGER NOT NULL DEFAULT 0, claimed_by TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,
    done_ms INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX requests_open ON requests (next_ms) WHERE state = 'open';
"""
"""Version 1 of the tables; `MIGRATIONS` take it to `SCHEMA_VERSION`."""


def upgrade_statements(version: int) -> list[str]:
    """What brings a database at `version` (0: empty) to SCHEMA_VERSION."""
    statements = [part.strip() for part in SCHEMA.split(";") if part.strip()] if version == 0 else []
    for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
        statements += MIGRATIONS[step]
    return statements


class _SQLiteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def lock(self, keys: Iterable[str]) -> None:
        """Nothing to do: a SQLite file has one writer at a time (BEGIN IMMEDIATE)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, parameters).rowcount

    def write(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        self._db.execute(sql, parameters)

    def one(self, sql: str, parameters: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._db.execute(sql, parameters).fetchone()
        return row

    def all(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql, parameters).fetchall())


class StoreBase:
    """What both stores do the same way on top of `transaction` and `reading`."""

    _keys: dict[str, tuple[bytes, float]]

    def transaction(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def reading(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def add_device(self, device: Device) -> None:
        """Register a device, or move it (new key, terminal or institution): its history stays where it was made."""
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO devices (device, key, terminal, institution, institution_type, region) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (device) DO UPDATE SET key = excluded.key, "
                "terminal = excluded.terminal, institution = excluded.institution, "
                "institution_type = excluded.institution_type, region = excluded.region",
                (device.device, device.key, device.terminal, device.institution, device.institution_type,
                 device.region),
            )
            tx.execute("INSERT INTO device_state (device) VALUES (?) ON CONFLICT (device) DO NOTHING",
                       (device.device,))
        self._keys.pop(device.device, None)

    def device_key(self, device: str) -> bytes | None:
        cached = self._keys.get(device)
        now = time.monotonic()
        if cached is not None and now - cached[1] < KEY_CACHE_S:
            return cached[0]
        with self.reading() as tx:
            row = tx.one("SELECT key FROM devices WHERE device = ?", (device,))
        if row is None:
            self._keys.pop(device, None)
            return None
        key = bytes(row[0])
        self._keys[device] = (key, now)
        return key

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read-only SQL for reports and tests."""
        with self.reading() as tx:
            return tx.all(sql, parameters)


class SQLiteStore(StoreBase):
    """The store in one SQLite file, WAL mode, synchronous=FULL: a committed event survives a power cut.

    One connection writes (serialised by a lock); a second one reads, so API
    queries see the last commit and never wait for an ingest batch.
    """

    def __init__(self, path: Path | str, *, durable: bool = True) -> None:
        """`durable=False` (scratch stores such as a replay's) skips the fsync of every commit."""
        self.path = Path(path)
        self._synchronous = "FULL" if durable else "OFF"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._connect()
        self._migrate()
        self._reader = self._connect()
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._keys: dict[str, tuple[bytes, float]] = {}

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")  # FULL: an acked event survives a power cut
        return db

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {version} is newer than this gateway's {SCHEMA_VERSION}; "
                             "upgrade the gateway or restore the backup taken before the upgrade")
        if version < SCHEMA_VERSION:
            self._db.execute("BEGIN IMMEDIATE")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]  # another process may have moved it
            for statement in upgrade_statements(version):
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        with self._read_lock:
            self._reader.execute("BEGIN")
            try:
                yield _SQLiteTx(self._reader)
            finally:
                self._reader.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()
