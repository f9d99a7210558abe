"""POS sale tickets as the gateway keeps them (reading one: gateway/wire/ticket.py); the owner of the `tickets` and
`ticket_lines` tables.

A ticket arrives as JSON (HTTP `POST /api/v1/tickets` or MQTT `tc/v1/pos/<terminal>/ticket`):

    {"number": "T20261122-0001", "terminal": "T01", "time": "2026-11-22T10:15:00+08:00",
     "institution": "P44030000001",
     "lines": [{"list_code": "XA01", "quantity": 2}, {"list_code": "XB02", "quantity": 3, "split": true}]}

`quantity` counts packs on a whole-pack line and units on a split (拆零) line. `time` is
ISO 8601 (without an offset it is read in the configured time zone) or ms since the
epoch. `institution` may be left out when a registered device serves the terminal. An optional `platform` object
carries sale fields only the POS knows, for the platform upload (POS_FIELDS: mdtrt_sn, setl_id, ...).
A ticket sent again with the same content is accepted once; with other content it is
refused (`ticket_conflict`).

Which scans a ticket's lines take, in either order of arrival, is `gateway.domain.matching`'s job; it reads and counts
the lines through the functions at the end of this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.domain import catalog, devices, rates
from gateway.rules import Rules
from gateway.store.base import Tx
from gateway.wire.ticket import Ticket, TicketError

__all__ = ["TicketRef", "record_ticket", "as_evidence",
           "number_of", "platform_fields", "LineToUpload", "line_to_upload", "count_row_made"]


@dataclass(frozen=True)
class TicketRef:
    """A stored ticket as the rules refer to it."""

    id: int
    institution: str
    terminal: str
    number: str
    time_ms: int


def record_ticket(tx: Tx, hour_deltas: rates.HourDeltas, ticket: Ticket, rules: Rules, *,
                  received_ms: int) -> tuple[int, TicketRef | None]:
    """Store a ticket and its lines; (ticket id, the ticket when newly stored: its waiting scans are to be claimed,
    `matching.claim`). Rates go to `hour_deltas`."""
    digest = ticket.digest()
    existing = tx.one("SELECT id, digest FROM tickets WHERE terminal = ? AND number = ?",
                      (ticket.terminal, ticket.number))
    if existing is not None:
        if bytes(existing[1]) != digest:
            raise TicketError("ticket_conflict", f"ticket {ticket.number} of terminal {ticket.terminal} was "
                              "already recorded with other content")
        return int(existing[0]), None
    institution = ticket.institution
    if not institution:
        registered = devices.institution_of_terminal(tx, ticket.terminal)
        if registered is None:
            raise TicketError("unknown_terminal", f"terminal {ticket.terminal!r} has no registered device; "
                              "give the ticket's institution")
        institution = registered
    row = tx.one("INSERT INTO tickets (terminal, institution, number, time_ms, received_ms, digest, platform) "
                 "VALUES (?,?,?,?,?,?,?) RETURNING id",
                 (ticket.terminal, institution, ticket.number, ticket.time_ms, received_ms, digest,
                  json.dumps(dict(ticket.platform), ensure_ascii=False)))
    assert row is not None
    ref = TicketRef(int(row[0]), institution, ticket.terminal, ticket.number, ticket.time_ms)
    required_units = 0
    for line_no, line in enumerate(ticket.lines, start=1):
        required = catalog.line_requires_code(tx, line.list_code)
        needed = 1 if line.split else line.quantity
        required_units += needed if required else 0
        tx.write("INSERT INTO ticket_lines (ticket_id, line_no, list_code, quantity, split, required, needed, "
                   "due_ms) VALUES (?,?,?,?,?,?,?,?)",
                   (ref.id, line_no, line.list_code, line.quantity, int(line.split), int(required), needed,
                    ticket.time_ms + rules.unscanned_after_s * 1000))
    hour_deltas.add(institution, ticket.terminal, ticket.time_ms, units_required=required_units)
    return ref.id, ref


def as_evidence(tx: Tx, ticket_ids: Iterable[int]) -> list[dict[str, object]]:
    """The tickets an alert points to with their lines, as people read them."""
    found: list[dict[str, object]] = []
    for ticket_id in ticket_ids:
        row = tx.one("SELECT id, number, terminal, institution, time_ms FROM tickets WHERE id = ?", (ticket_id,))
        if row is not None:
            lines = tx.all("SELECT line_no, list_code, quantity, split, needed, scans FROM ticket_lines "
                           "WHERE ticket_id = ? ORDER BY line_no", (ticket_id,))
            found.append({"id": row[0], "number": row[1], "terminal": row[2], "institution": row[3],
                          "time_ms": row[4], "lines": [
                              {"line_no": line[0], "list_code": line[1], "quantity": line[2],
                               "split": bool(line[3]), "needed": line[4], "scans": line[5]} for line in lines]})
    return found


def number_of(tx: Tx, ticket_id: int) -> str | None:
    row = tx.one("SELECT number FROM tickets WHERE id = ?", (ticket_id,))
    return row[0] if row else None


def platform_fields(tx: Tx, ticket_id: int) -> dict[str, str]:
    """The platform fields the POS gave with a ticket (empty when it is gone)."""
    row = tx.one("SELECT platform FROM tickets WHERE id = ?", (ticket_id,))
    return json.loads(row[0]) if row else {}


@dataclass(frozen=True)
class LineToUpload:
    """A ticket line as its platform row needs it."""

    list_code: str
    quantity: int
    split: bool
    scans: int
    needed: int
    rows_made: int
    number: str
    time_ms: int
    platform: dict[str, str]
    received_ms: int


def line_to_upload(tx: Tx, line_id: int) -> LineToUpload:
    row = tx.one("SELECT l.list_code, l.quantity, l.split, l.scans, l.needed, l.rows_made, t.number, t.time_ms, "
                 "t.platform, t.received_ms FROM ticket_lines l JOIN tickets t ON t.id = l.ticket_id "
                 "WHERE l.id = ?", (line_id,))
    assert row is not None
    return LineToUpload(row[0], int(row[1]), bool(row[2]), int(row[3]), int(row[4]), int(row[5]), row[6], int(row[7]),
                        json.loads(row[8]), int(row[9]))


def count_row_made(tx: Tx, line_id: int) -> None:
    """One more platform row made for the line (a correction makes another)."""
    tx.write("UPDATE ticket_lines SET rows_made = rows_made + 1 WHERE id = ?", (line_id,))


# tickets as ticket matching sees them (gateway.domain.matching, gateway.domain.paycheck) ----------------------------

@dataclass(frozen=True)
class StoredLine:
    """A stored ticket line and the scans counted on it."""

    id: int
    line_no: int
    list_code: str
    needed: int
    scans: int
    stood: int
    required: bool
    split: bool
    quantity: int


def lines_of(tx: Tx, ticket_id: int) -> list[StoredLine]:
    return [StoredLine(int(row[0]), int(row[1]), row[2], int(row[3]), int(row[4]), int(row[5]), bool(row[6]),
                       bool(row[7]), int(row[8]))
            for row in tx.all("SELECT id, line_no, list_code, needed, scans, stood, required, split, quantity "
                              "FROM ticket_lines WHERE ticket_id = ? ORDER BY line_no", (ticket_id,))]


def by_number(tx: Tx, terminal: str, number: str) -> TicketRef | None:
    row = tx.one("SELECT id, institution, terminal, number, time_ms FROM tickets WHERE terminal = ? AND number = ?",
                 (terminal, number))
    return TicketRef(*row) if row else None


def first_settled_between(tx: Tx, terminal: str, low_ms: int, high_ms: int) -> TicketRef | None:
    """The terminal's first ticket settled in [low_ms, high_ms]."""
    row = tx.one("SELECT id, institution, terminal, number, time_ms FROM tickets WHERE terminal = ? "
                 "AND time_ms BETWEEN ? AND ? ORDER BY time_ms, id LIMIT 1", (terminal, low_ms, high_ms))
    return TicketRef(*row) if row else None


def settled_before(tx: Tx, terminal: str, time_ms: int) -> int | None:
    """When the terminal's last ticket before `time_ms` settled; None when there is none."""
    row = tx.one("SELECT max(time_ms) FROM tickets WHERE terminal = ? AND time_ms < ?", (terminal, time_ms))
    return int(row[0]) if row and row[0] is not None else None


def count_fill(tx: Tx, line_id: int) -> None:
    tx.write("UPDATE ticket_lines SET scans = scans + 1 WHERE id = ?", (line_id,))


def count_stand(tx: Tx, line_id: int) -> None:
    tx.write("UPDATE ticket_lines SET stood = stood + 1 WHERE id = ?", (line_id,))


def give_back_fill(tx: Tx, line_id: int) -> None:
    """A scan that filled the line goes to another ticket's line: the line is checked again."""
    tx.write("UPDATE ticket_lines SET scans = scans - 1, checked = 0 WHERE id = ?", (line_id,))


def due_terminals(tx: Tx, now_ms: int) -> list[str]:
    """Terminals with ticket lines due for the unscanned check."""
    return [row[0] for row in tx.all("SELECT DISTINCT t.terminal FROM ticket_lines l JOIN tickets t "
                                     "ON t.id = l.ticket_id WHERE l.checked = 0 AND l.due_ms <= ?", (now_ms,))]


def due_tickets(tx: Tx, now_ms: int, *, limit: int) -> list[TicketRef]:
    """Tickets with lines past their due time and not checked, oldest first."""
    return [TicketRef(*row) for row in tx.all(
        "SELECT DISTINCT l.ticket_id, t.institution, t.terminal, t.number, t.time_ms FROM ticket_lines l "
        "JOIN tickets t ON t.id = l.ticket_id WHERE l.checked = 0 AND l.due_ms <= ? ORDER BY t.time_ms LIMIT ?",
        (now_ms, limit))]


def check_lines(tx: Tx, ticket_id: int) -> set[int]:
    """Mark every line of the ticket checked; the ids of those that were not."""
    unchecked = {int(line_id) for (line_id,) in tx.all("SELECT id FROM ticket_lines WHERE ticket_id = ? "
                                                       "AND checked = 0", (ticket_id,))}
    tx.write("UPDATE ticket_lines SET checked = 1 WHERE ticket_id = ?", (ticket_id,))
    return unchecked
