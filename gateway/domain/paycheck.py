"""无码不付 (no code, no pay): before settling, a POS asks whether each line of a ticket has its codes.

The answer runs the matching's own rules (`gateway.domain.matching.place`, `lacking`) over what is stored now and
writes nothing: the scans carrying the ticket's number, then loose scans of the checkout (made since the
terminal's last ticket) of its products, then loose boxes of other products for units still short. A ticket
already stored is answered from its stored matching. Per line: the codes that fill it, the units still missing
a code, duplicate sales scanned for it (codes already sold) and boxes of products the ticket does not bill
scanned in its place; `pay` is true when every line that requires a code has all of them and nothing scanned
for the ticket was a duplicate, another product or an unknown one. Reads go through indexes only (the
ticket's number, per product and time, per line), so the cost follows the ticket, not the stored scans.
"""

from __future__ import annotations

from typing import Any

from gateway.domain import catalog, matching, scans, tickets
from gateway.domain.matching import Line, Matching, Placement
from gateway.rules import Rules
from gateway.store.base import Tx
from gateway.wire.ticket import Ticket, TicketError

__all__ = ["check"]


def check(tx: Tx, ticket: Ticket, rules: Rules) -> dict[str, Any]:
    """The answer for one ticket (its `time`: when the POS asks, or when it settles)."""
    stored = tickets.by_number(tx, ticket.terminal, ticket.number)
    if stored is not None:
        lines, placements = _stored(tx, stored.id)
        billed = sorted((line.list_code, line.quantity, line.split) for line in ticket.lines)
        if sorted((line.list_code, line.quantity, line.split) for line in lines) != billed:
            raise TicketError("ticket_conflict", f"ticket {ticket.number} of terminal {ticket.terminal} is stored "
                              "with other lines: a checkout needs a number of its own")
    else:
        lines, placements = _dry_run(tx, ticket, rules)
    return _answer(ticket, lines, placements, stored=stored is not None)


def _dry_run(tx: Tx, ticket: Ticket, rules: Rules) -> tuple[list[Line], list[Placement]]:
    lines = [Line(index, index, line.list_code, 1 if line.split else line.quantity, 0, 0,
                  catalog.line_requires_code(tx, line.list_code), line.split, line.quantity)
             for index, line in enumerate(ticket.lines, start=1)]
    numbered = scans.numbered_sales(tx, ticket.terminal, ticket.number)
    products = sorted({line.list_code for line in lines})
    fills = [scan for scan in numbered if scan.list_code in products and not scan.duplicate]
    placements = [matching.place(lines, scan) for scan in fills]
    span = matching.checkout_span(tx, ticket.terminal, ticket.time_ms, rules)
    for duplicate in (False, True):
        if duplicate:
            placements += [matching.place(lines, scan) for scan in sorted(
                (scan for scan in numbered if scan not in fills), key=lambda scan: scan.list_code not in products)]
        for product in products:
            mine = [line for line in lines if line.list_code == product]
            room = sum(max(0, line.needed - line.scans - (line.stood if duplicate else 0)) for line in mine)
            placements += [matching.place(mine, scan) for scan in matching.loose_near(
                tx, ticket.terminal, product, ticket.time_ms, span, duplicate=duplicate, limit=room)]
    short = matching.lacking(lines)
    wanted = sum(short[line.id] for line in lines if line.required)
    taken = {placement.scan.id for placement in placements}
    for scan in matching.loose_any(tx, ticket.terminal, ticket.time_ms, span, wanted) if wanted else []:
        if scan.id not in taken:
            placements.append(matching.place([line for line in lines if line.required], scan))
    return lines, placements


def _stored(tx: Tx, ticket_id: int) -> tuple[list[Line], list[Placement]]:
    lines = matching.ticket_lines(tx, ticket_id)
    placements = []
    for line in lines:
        for scan, how in scans.filling(tx, line.id):
            placements.append(Placement(scan, Matching(how), fills=line))
        for scan, how in scans.standing_for(tx, line.id):
            placements.append(Placement(scan, Matching(how), stands_for=line))
    for scan, how in scans.beyond_lines(tx, ticket_id):
        placements.append(Placement(scan, Matching(how)))
    return lines, placements


def _answer(ticket: Ticket, lines: list[Line], placements: list[Placement], *, stored: bool) -> dict[str, Any]:
    short = matching.lacking(lines)
    per_line: dict[int, dict[str, Any]] = {line.id: {
        "line_no": line.line_no, "list_code": line.list_code, "quantity": line.quantity, "split": line.split,
        "required": line.required, "needed": line.needed, "scanned": [], "missing": short[line.id] if line.required
        else 0, "duplicates": [], "mismatches": [], "unknown": []} for line in lines}
    extra: list[str] = []
    for placement in placements:
        scan = placement.scan
        if placement.fills is not None:
            per_line[placement.fills.id]["scanned"].append(scan.code)
            continue
        kind = ("duplicates" if scan.duplicate else "unknown" if placement.matching == Matching.UNKNOWN_PRODUCT
                else "mismatches" if placement.matching == Matching.MISMATCH else "")
        if placement.stands_for is not None and kind:
            per_line[placement.stands_for.id][kind].append(scan.code)
        elif kind:
            extra.append(scan.code)
    answers = [per_line[line.id] for line in lines]
    pay = not extra and all(not (answer["missing"] or answer["duplicates"] or answer["mismatches"]
                                 or answer["unknown"]) for answer in answers)
    return {"number": ticket.number, "terminal": ticket.terminal, "stored": stored, "pay": pay, "lines": answers,
            "extra": extra}
