"""A stored scan as the supervision rules see it: the event, where it was made, and its product; and the
`events` table that keeps them (this module owns it: other modules read and write events through it).

An event row keeps the exact signed bytes as evidence and is unique on (device, seq).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.store.base import Tx
from gateway.wire.protocol import Event, Operation

__all__ = ["StoredScan", "SALES", "stored_events", "seqs_after", "store_event", "set_verdict", "latest_sales",
           "as_evidence", "SaleScan", "loose_sales", "numbered_sales", "filling", "standing_for", "beyond_lines",
           "of_line", "tie", "TakenScan", "taken_by_later_tickets"]

SALES = (Operation.SALE, Operation.DISPENSE)
"""Operations that hand a pack to a patient: a pharmacy sale or a hospital dispense."""


@dataclass(frozen=True, kw_only=True)
class StoredScan:
    id: int
    """Row id in `events`: the evidence alerts point to."""
    device: str
    terminal: str
    institution: str
    institution_type: str
    region: str
    op: Operation
    code: str
    pid: str
    err: int
    ticket: str
    split_qty: int
    event_ms: int
    """Device time when its clock was synced, otherwise the time the gateway received it."""
    list_code: str = ""
    """From the catalog; empty when the product is unknown."""
    pack_size: int = 0
    """From the catalog; 0 when unknown (no split allowance can be judged)."""

    @property
    def is_sale(self) -> bool:
        return self.op in SALES and not self.err


_CHUNK = 400
"""(device, seq) pairs asked per query: round trips are what PostgreSQL costs."""


def stored_events(tx: Tx, pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], tuple[bytes, int]]:
    """(device, seq) -> (signed bytes, verdict) of those of `pairs` already stored, one query per 400."""
    ordered = sorted(set(pairs))
    found: dict[tuple[str, int], tuple[bytes, int]] = {}
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start:start + _CHUNK]
        for row in tx.all(f"SELECT device, seq, signed, verdict FROM events WHERE (device, seq) IN "
                          f"(VALUES {','.join(['(?, ?)'] * len(chunk))})",
                          [value for pair in chunk for value in pair]):
            found[(row[0], int(row[1]))] = (bytes(row[2]), int(row[3]))
    return found


def seqs_after(tx: Tx, device: str, seq: int, *, limit: int = 500) -> list[int]:
    """The device's stored seqs above `seq`, lowest first, at most `limit`."""
    return [int(row[0]) for row in tx.all("SELECT seq FROM events WHERE device = ? AND seq > ? ORDER BY seq LIMIT ?",
                                          (device, seq, limit))]


def store_event(tx: Tx, event: Event, *, signed: bytes, received_ms: int, event_ms: int, terminal: str,
                institution: str, list_code: str, instance: str) -> int:
    """Keep a new event with its exact signed bytes, verdict OK until `set_verdict` says otherwise; its row id."""
    row = tx.one(
        "INSERT INTO events (device, seq, received_ms, signed, boot, device_time_ms, clock, event_ms, terminal, "
        "institution, op, kind, code, pid, serial, lot, expiry, made, err, ticket, split_qty, list_code, verdict, "
        "instance) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,?) RETURNING id",
        (event.device, event.seq, received_ms, signed, event.boot, event.time_ms, event.clock, event_ms,
         terminal, institution, int(event.op), event.kind, event.code, event.pid, event.serial, event.lot,
         event.expiry, event.made, event.err, event.ticket, event.split_qty, list_code, instance))
    assert row is not None
    return int(row[0])


def set_verdict(tx: Tx, event_id: int, verdict: int) -> None:
    tx.write("UPDATE events SET verdict = ? WHERE id = ?", (verdict, event_id))


def latest_sales(tx: Tx, code: str, *, limit: int) -> list[int]:
    """Ids of the code's last `limit` valid sale scans, oldest first: a duplicate alert's evidence."""
    return [int(event_id) for (event_id,) in tx.all(
        "SELECT id FROM events WHERE code = ? AND err = 0 AND op IN (?, ?) ORDER BY id DESC LIMIT ?",
        (code, int(Operation.SALE), int(Operation.DISPENSE), limit))][::-1]


_EVIDENCE = ("id", "device", "seq", "terminal", "institution", "event_ms", "op", "code", "pid", "ticket", "split_qty",
             "verdict")


def as_evidence(tx: Tx, event_ids: Iterable[int]) -> list[dict[str, object]]:
    """The events an alert points to, as people read them (those still stored, in the order given)."""
    found = []
    for event_id in event_ids:
        row = tx.one(f"SELECT {', '.join(_EVIDENCE)} FROM events WHERE id = ?", (event_id,))
        if row is not None:
            found.append(dict(zip(_EVIDENCE, row, strict=True)))
    return found


# sale scans as ticket matching sees them (gateway.domain.matching, gateway.domain.paycheck) -------------------------

@dataclass(frozen=True)
class SaleScan:
    """A valid stored sale scan as ticket matching sees it."""

    id: int
    code: str
    list_code: str
    """Empty when the catalog does not know the product."""
    duplicate: bool
    split_qty: int
    event_ms: int
    device: str = ""


_SALE_COLUMNS = "id, code, list_code, verdict = 1, split_qty, event_ms, device"
_SALE = "err = 0 AND op IN (1, 6)"
_LOOSE = f"ticket_id IS NULL AND {_SALE} AND ticket = ''"
"""A sale scan tied to no ticket and carrying no ticket number: the predicate of the index events_loose."""


def _sale_scan(row: Sequence[Any]) -> SaleScan:
    return SaleScan(int(row[0]), row[1], row[2], bool(row[3]), int(row[4]), int(row[5]), row[6])


def loose_sales(tx: Tx, terminal: str, *, low_ms: int, high_ms: int, descending: bool, limit: int,
                list_code: str | None = None, duplicate: bool = False) -> list[SaleScan]:
    """Up to `limit` loose sale scans of a terminal made in [low_ms, high_ms], by time (newest first when
    `descending`): of one product and duplicate or not when `list_code` is given (index events_loose)."""
    direction = "DESC" if descending else "ASC"
    if list_code is not None:
        rows = tx.all(f"SELECT {_SALE_COLUMNS} FROM events WHERE terminal = ? AND list_code = ? AND verdict = ? "
                      f"AND {_LOOSE} AND event_ms BETWEEN ? AND ? ORDER BY event_ms {direction}, id LIMIT ?",
                      (terminal, list_code, 1 if duplicate else 0, low_ms, high_ms, limit))
    else:
        rows = tx.all(f"SELECT {_SALE_COLUMNS} FROM events WHERE terminal = ? AND {_LOOSE} AND event_ms BETWEEN ? "
                      f"AND ? ORDER BY event_ms {direction}, id LIMIT ?", (terminal, low_ms, high_ms, limit))
    return [_sale_scan(row) for row in rows]


def numbered_sales(tx: Tx, terminal: str, number: str) -> list[SaleScan]:
    """The sale scans carrying a ticket number and tied to no ticket yet (index events_by_ticket)."""
    return [_sale_scan(row) for row in tx.all(
        f"SELECT {_SALE_COLUMNS} FROM events WHERE terminal = ? AND ticket = ? AND ticket <> '' "
        f"AND ticket_id IS NULL AND {_SALE} ORDER BY id", (terminal, number))]


def filling(tx: Tx, line_id: int) -> list[tuple[SaleScan, int]]:
    """The scans that fill a ticket line, with their events.matching."""
    return [(_sale_scan(row), int(row[7])) for row in tx.all(
        f"SELECT {_SALE_COLUMNS}, matching FROM events WHERE line_id = ? ORDER BY id", (line_id,))]


def standing_for(tx: Tx, line_id: int) -> list[tuple[SaleScan, int]]:
    """The scans that stand for a ticket line, with their events.matching."""
    return [(_sale_scan(row), int(row[7])) for row in tx.all(
        f"SELECT {_SALE_COLUMNS}, matching FROM events WHERE stands_for = ? ORDER BY id", (line_id,))]


def beyond_lines(tx: Tx, ticket_id: int) -> list[tuple[SaleScan, int]]:
    """The scans tied to a ticket but to none of its lines, with their events.matching."""
    return [(_sale_scan(row), int(row[7])) for row in tx.all(
        f"SELECT {_SALE_COLUMNS}, matching FROM events WHERE ticket_id = ? AND line_id IS NULL "
        "AND stands_for IS NULL ORDER BY id", (ticket_id,))]


def of_line(tx: Tx, line_id: int) -> list[int]:
    """Ids of the scans that fill or stand for a ticket line."""
    return [int(event_id) for (event_id,) in tx.all(
        "SELECT id FROM events WHERE line_id = ? UNION SELECT id FROM events WHERE stands_for = ? ORDER BY 1",
        (line_id, line_id))]


def tie(tx: Tx, event_id: int, *, ticket_id: int, line_id: int | None, stands_for: int | None,
        matching: int) -> None:
    """Tie a scan to a ticket: the line it fills (its code goes up in that line's row), the line it stands for."""
    tx.write("UPDATE events SET ticket_id = ?, line_id = ?, stands_for = ?, matching = ? WHERE id = ?",
             (ticket_id, line_id, stands_for, matching, event_id))


@dataclass(frozen=True)
class TakenScan:
    """A loose scan that fills a line of a ticket, with that line and ticket."""

    scan: SaleScan
    line_id: int
    line_required: bool
    institution: str
    terminal: str
    ticket_time_ms: int


def taken_by_later_tickets(tx: Tx, terminal: str, *, settled_after_ms: int, settled_until_ms: int, list_code: str,
                           made_from_ms: int, made_until_ms: int, limit: int) -> list[TakenScan]:
    """Loose scans of one product made in [made_from_ms, made_until_ms] at a terminal that fill a line of a ticket
    settled in (settled_after_ms, settled_until_ms], newest first: one indexed query through the tickets."""
    return [TakenScan(_sale_scan(row), int(row[7]), bool(row[8]), row[9], row[10], int(row[11])) for row in tx.all(
        "SELECT e.id, e.code, e.list_code, e.verdict = 1, e.split_qty, e.event_ms, e.device, l.id, l.required, "
        "t.institution, t.terminal, t.time_ms FROM tickets t JOIN ticket_lines l ON l.ticket_id = t.id "
        "JOIN events e ON e.line_id = l.id WHERE t.terminal = ? AND t.time_ms > ? AND t.time_ms <= ? "
        "AND l.list_code = ? AND e.ticket = '' AND e.event_ms BETWEEN ? AND ? ORDER BY e.event_ms DESC LIMIT ?",
        (terminal, settled_after_ms, settled_until_ms, list_code, made_from_ms, made_until_ms, limit))]
