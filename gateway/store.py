"""Durable storage of verified events: the interface ingest needs, and its SQLite implementation.

One `commit` per ingest batch, in one transaction: events are unique on
(device, seq) and keep their exact signed bytes; a retransmission of stored
bytes is counted, not stored twice; the same seq with other bytes is a replay
and goes to quarantine with every other rejected message. Acks may be sent once
`commit` has returned.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.protocol import Event, Operation, Verdict

__all__ = ["Device", "Accepted", "Rejected", "DeviceAck", "CommitResult", "Store", "SQLiteStore"]


@dataclass(frozen=True, kw_only=True)
class Device:
    """A registered counter device."""

    device: str
    key: bytes = field(repr=False)
    """The 32-byte COSE_Mac0 key; never logged."""
    terminal: str
    """The counter (POS terminal) it serves."""
    institution: str
    """定点医药机构 code (12 characters on the platform)."""
    institution_type: str = "pharmacy"
    """"pharmacy" or "hospital"."""
    region: str = ""
    """Administrative division code, e.g. 440300."""


@dataclass(frozen=True)
class Accepted:
    """An event whose MAC verified and whose fields passed the schema."""

    event: Event
    signed: bytes
    """The exact COSE_Mac0 bytes as received."""
    received_ms: int


@dataclass(frozen=True)
class Rejected:
    """A message the gateway will not accept; kept in quarantine for inspection."""

    topic: str
    device: str
    reason: str
    detail: str
    message: bytes
    received_ms: int


@dataclass
class DeviceAck:
    """What one device is told after a commit."""

    acked_seq: int
    """Every seq from 1 to this one is stored."""
    verdicts: list[tuple[int, Verdict]] = field(default_factory=list)


@dataclass
class CommitResult:
    acks: dict[str, DeviceAck] = field(default_factory=dict)
    stored: int = 0
    duplicates: int = 0
    replays: int = 0
    quarantined: int = 0


class Store(Protocol):
    """What ingest needs from storage; SQLite here, PostgreSQL later, ingest unchanged."""

    def device_key(self, device: str) -> bytes | None: ...

    def commit(self, accepted: Iterable[Accepted], rejected: Iterable[Rejected]) -> CommitResult: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, key BLOB NOT NULL, terminal TEXT NOT NULL, institution TEXT NOT NULL,
    institution_type TEXT NOT NULL DEFAULT 'pharmacy', region TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, received_ms INTEGER NOT NULL,
    signed BLOB NOT NULL, boot INTEGER NOT NULL, device_time_ms INTEGER NOT NULL, clock INTEGER NOT NULL,
    op INTEGER NOT NULL, kind INTEGER NOT NULL, code TEXT NOT NULL, pid TEXT NOT NULL, serial TEXT NOT NULL,
    lot TEXT NOT NULL, expiry TEXT NOT NULL, err INTEGER NOT NULL, ticket TEXT NOT NULL, split_qty INTEGER NOT NULL,
    verdict INTEGER NOT NULL, UNIQUE (device, seq));
CREATE INDEX IF NOT EXISTS events_by_code ON events (code) WHERE err = 0;
CREATE TABLE IF NOT EXISTS device_progress (
    device TEXT PRIMARY KEY, acked_seq INTEGER NOT NULL, max_seq INTEGER NOT NULL,
    duplicates INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL, topic TEXT NOT NULL, device TEXT NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, message BLOB NOT NULL, digest BLOB NOT NULL UNIQUE,
    times INTEGER NOT NULL DEFAULT 1, last_ms INTEGER NOT NULL);
"""


class SQLiteStore:
    """The store in one SQLite file, WAL mode; safe to call from one ingest thread and readers."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acked event must survive a power cut of the gateway
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}

    def add_device(self, device: Device) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO devices (device, key, terminal, institution, institution_type, region) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET key = excluded.key, "
                "terminal = excluded.terminal, institution = excluded.institution, "
                "institution_type = excluded.institution_type, region = excluded.region",
                (device.device, device.key, device.terminal, device.institution, device.institution_type,
                 device.region),
            )
            self._keys.pop(device.device, None)

    def device_key(self, device: str) -> bytes | None:
        key = self._keys.get(device)
        if key is None:
            with self._lock:
                row = self._db.execute("SELECT key FROM devices WHERE device = ?", (device,)).fetchone()
            if row is None:
                return None
            key = self._keys[device] = bytes(row[0])
        return key

    def commit(self, accepted: Iterable[Accepted], rejected: Iterable[Rejected]) -> CommitResult:
        result = CommitResult()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for item in accepted:
                    self._store_event(item, result)
                for refusal in rejected:
                    self._quarantine(refusal)
                    result.quarantined += 1
                for device, ack in result.acks.items():
                    ack.acked_seq = self._advance(device)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return result

    def _store_event(self, item: Accepted, result: CommitResult) -> None:
        event = item.event
        ack = result.acks.setdefault(event.device, DeviceAck(acked_seq=0))
        row = self._db.execute(
            "SELECT signed, verdict FROM events WHERE device = ? AND seq = ?", (event.device, event.seq)
        ).fetchone()
        if row is not None:
            if bytes(row[0]) == item.signed:
                result.duplicates += 1
                self._db.execute("UPDATE device_progress SET duplicates = duplicates + 1 WHERE device = ?",
                                 (event.device,))
                ack.verdicts.append((event.seq, Verdict(row[1])))
            else:
                result.replays += 1
                self._quarantine(Rejected(topic=f"tc/v1/{event.device}/ev", device=event.device, reason="replay",
                                          detail=f"seq {event.seq} already stored with other bytes",
                                          message=item.signed, received_ms=item.received_ms))
            return
        verdict = self._verdict(event)
        self._db.execute(
            "INSERT INTO events (device, seq, received_ms, signed, boot, device_time_ms, clock, op, kind, code, pid, "
            "serial, lot, expiry, err, ticket, split_qty, verdict) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (event.device, event.seq, item.received_ms, item.signed, event.boot, event.time_ms, event.clock,
             int(event.op), event.kind, event.code, event.pid, event.serial, event.lot, event.expiry, event.err,
             event.ticket, event.split_qty, int(verdict)),
        )
        self._db.execute(
            "INSERT INTO device_progress (device, acked_seq, max_seq) VALUES (?, 0, ?) "
            "ON CONFLICT (device) DO UPDATE SET max_seq = max(max_seq, excluded.max_seq)",
            (event.device, event.seq),
        )
        result.stored += 1
        ack.verdicts.append((event.seq, verdict))

    def _verdict(self, event: Event) -> Verdict:
        """The counter's verdict; a whole-pack sale of a code already sold is a duplicate."""
        if event.err:
            return Verdict.INVALID_CODE
        if event.op == Operation.SALE and not event.split_qty:
            sold = self._db.execute(
                "SELECT count(*) FROM events WHERE code = ? AND err = 0 AND op = ?", (event.code, int(Operation.SALE))
            ).fetchone()[0]
            returned = self._db.execute(
                "SELECT count(*) FROM events WHERE code = ? AND err = 0 AND op = ?",
                (event.code, int(Operation.SALE_RETURN)),
            ).fetchone()[0]
            if sold > returned:
                return Verdict.DUPLICATE_SALE
        return Verdict.OK

    def _advance(self, device: str) -> int:
        """Move the device's contiguous stored seq forward over what is now present; return it."""
        row = self._db.execute("SELECT acked_seq FROM device_progress WHERE device = ?", (device,)).fetchone()
        acked = row[0] if row else 0
        while self._db.execute("SELECT 1 FROM events WHERE device = ? AND seq = ?", (device, acked + 1)).fetchone():
            acked += 1
        self._db.execute("UPDATE device_progress SET acked_seq = ? WHERE device = ?", (acked, device))
        return int(acked)

    def _quarantine(self, refusal: Rejected) -> None:
        """Keep the bytes once; a device that resends them only raises the count (the table stays bounded)."""
        digest = hashlib.sha256(refusal.topic.encode() + b"\0" + refusal.message).digest()
        self._db.execute(
            "INSERT INTO quarantine (received_ms, topic, device, reason, detail, message, digest, last_ms) "
            "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (digest) DO UPDATE SET times = times + 1, last_ms = excluded.last_ms",
            (refusal.received_ms, refusal.topic, refusal.device, refusal.reason, refusal.detail, refusal.message,
             digest, refusal.received_ms),
        )

    def query(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Read-only SQL for reports and tests."""
        with self._lock:
            return list(self._db.execute(sql, parameters).fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()
