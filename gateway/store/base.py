"""Durable storage: the small interface the rest of the gateway needs, and what both stores share.

Everything above this module (pipeline, ledger, tickets, rates, alerts, api) talks
to a `Tx`: `execute`, `one` and `all` with `?` parameters and SQL that SQLite and
PostgreSQL both understand (ON CONFLICT, RETURNING, no engine-only functions), and
`lock` for work that several gateway instances must not interleave. The PostgreSQL
store (`gateway.store.postgres`) provides the same calls over the same tables as SQLite
(`gateway.store.sqlite`); both keep the tables of `gateway.store.schema`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from gateway.errors import GatewayError

__all__ = ["Device", "Tx", "Store", "StoreBase", "StoreError", "Conflict", "retrying", "KEY_CACHE_S"]

KEY_CACHE_S = 30.0
"""A key changed by `trace-gateway device add` in another process is used within this many seconds."""


class StoreError(GatewayError, RuntimeError):
    """A database the gateway cannot use (e.g. made by a newer version)."""

    kind = "unusable"


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
