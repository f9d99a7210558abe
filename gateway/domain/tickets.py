"""POS sale tickets: read them, store them, and match sale scans to their lines.

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

Which scans a ticket's lines take, in either order of arrival, is `gateway.domain.matching`'s job.
"""

from __future__ import annotations

import json

from gateway.domain import catalog, matching, rates
from gateway.rules import Rules
from gateway.store.base import Tx
from gateway.wire.ticket import Ticket, TicketError

__all__ = ["record_ticket"]


def record_ticket(tx: Tx, tally: rates.HourDeltas, ticket: Ticket, rules: Rules, *,
                  received_ms: int) -> tuple[int, bool]:
    """Store a ticket and claim the scans already waiting for it; (ticket id, newly stored). Rates go to `tally`."""
    digest = ticket.digest()
    existing = tx.one("SELECT id, digest FROM tickets WHERE terminal = ? AND number = ?",
                      (ticket.terminal, ticket.number))
    if existing is not None:
        if bytes(existing[1]) != digest:
            raise TicketError("ticket_conflict", f"ticket {ticket.number} of terminal {ticket.terminal} was "
                              "already recorded with other content")
        return int(existing[0]), False
    institution = ticket.institution
    if not institution:
        row = tx.one("SELECT institution FROM devices WHERE terminal = ? LIMIT 1", (ticket.terminal,))
        if row is None:
            raise TicketError("unknown_terminal", f"terminal {ticket.terminal!r} has no registered device; "
                              "give the ticket's institution")
        institution = row[0]
    row = tx.one("INSERT INTO tickets (terminal, institution, number, time_ms, received_ms, digest, platform) "
                 "VALUES (?,?,?,?,?,?,?) RETURNING id",
                 (ticket.terminal, institution, ticket.number, ticket.time_ms, received_ms, digest,
                  json.dumps(dict(ticket.platform), ensure_ascii=False)))
    assert row is not None
    ref = matching.TicketRef(int(row[0]), institution, ticket.terminal, ticket.number, ticket.time_ms)
    required_units = 0
    for line_no, line in enumerate(ticket.lines, start=1):
        required = catalog.line_requires_code(tx, line.list_code)
        needed = 1 if line.split else line.quantity
        required_units += needed if required else 0
        tx.write("INSERT INTO ticket_lines (ticket_id, line_no, list_code, quantity, split, required, needed, "
                   "due_ms) VALUES (?,?,?,?,?,?,?,?)",
                   (ref.id, line_no, line.list_code, line.quantity, int(line.split), int(required), needed,
                    ticket.time_ms + rules.unscanned_after_s * 1000))
    tally.add(institution, ticket.terminal, ticket.time_ms, units_required=required_units)
    matching.claim(tx, tally, ref, rules, received_ms=received_ms)
    return ref.id, True
