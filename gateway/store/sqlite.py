"""The store in one SQLite file."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.store.base import StoreBase, StoreError, Tx
from gateway.store.schema import SCHEMA_VERSION, upgrade_statements

__all__ = ["SQLiteStore"]


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


class SQLiteStore(StoreBase):
    """The store in one SQLite file, WAL mode, synchronous=FULL: a committed event survives a power cut.

    One connection writes (serialised by a lock); a second one reads, so API
    queries see the last commit and never wait for an ingest batch.
    """

    def __init__(self, path: Path | str, *, durable: bool = True) -> None:
        """`durable=False` (scratch stores such as a replay's) skips the fsync of every commit."""
        self.path = Path(path)
        self._synchronous = "FULL" if durable else "OFF"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
            self._migrate()
            self._reader = self._connect()
        except (OSError, sqlite3.DatabaseError) as error:  # a folder, another kind of file, no permission
            raise StoreError(f"{self.path}: cannot open as the gateway's SQLite database: {error}") from None
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
