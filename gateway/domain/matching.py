"""Sale scans against ticket lines: which scan a line takes, and how many of its units lack any code.

A scan carrying a ticket number belongs to that ticket. A scan without one (loose) belongs to the checkout it
was made in: a counter serves one customer at a time and boxes are scanned before the customer pays, so that is
the first ticket of its terminal settled after the scan (at most `match_after_ticket_s` before it, for clock skew
between POS and scanner; at most `match_window_s` after it). A ticket takes the loose scans of its products made
since the ticket before it, nearest first; what it does not bill stays loose until its lines are checked, and
then stands for a line still short (串换), never for another customer's. Either may arrive first: a scan after
its ticket is placed when stored (`match_scan`), scans before it when the ticket is stored (`claim`).

What a scan does to the line it meets:
- it *fills* it: a valid scan of the line's product, no duplicate, while the line has fewer fills than it needs.
  Its code goes up in the line's platform row (`events.line_id`) and covers a unit (coverage);
- it *stands for* it: a scan made for the line that cannot fill it: a duplicate sale of the line's product, a box
  of a product the ticket does not bill (串换: it stands for a billed line left unfilled), or a product the
  catalog does not know (`events.stands_for`, `ticket_lines.stood`). A code was scanned for that unit, so it is
  no 无码 unit: the scan is evidence on its own alert (repeat_sale and its kin, product_mismatch), never the
  cause of an `unscanned_sale` too;
- or neither (a box beyond every line's quantity): tied to the ticket only.

The rules are the pure functions `place` and `lacking`; the POS check (`gateway.domain.paycheck`) runs the same ones.
The cost of a ticket's claim grows with its lines and units, not with the scans waiting unmatched: loose scans
are fetched per product, nearest in time first, only as many as the lines have room for (index `events_loose`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from gateway.domain import alerts, outbox, rates
from gateway.domain.scans import StoredScan
from gateway.rules import Rules
from gateway.store.base import Tx

__all__ = ["Matching", "Line", "Scan", "Placement", "TicketRef", "place", "lacking", "ticket_lines", "checkout_span",
           "loose_near", "loose_any", "match_scan", "claim", "due_terminals", "check_due_lines", "DUPLICATE_KINDS"]

DUPLICATE_KINDS = ("repeat_sale", "returned_drug", "cross_institution_sale", "distant_sale")
"""The alerts a duplicate sale raises (gateway.domain.ledger); a scan that stands for a line adds its ticket to them."""


class Matching(IntEnum):
    """events.matching: how a sale scan relates to the tickets."""

    NONE = 0
    LINE = 1
    """Its product is on a line of its ticket (it fills the line, stands for it as a duplicate, or is extra)."""
    MISMATCH = 2
    """Tied to a ticket none of whose lines is its product (串换 suspicion)."""
    UNKNOWN_PRODUCT = 3
    """Tied to a ticket, but the catalog does not know its product."""


@dataclass
class Line:
    """A ticket line as matching sees it; `scans` and `stood` move as scans are placed."""

    id: int
    line_no: int
    list_code: str
    needed: int
    """Codes the line needs: one per pack on a whole-pack line, one on a split line."""
    scans: int
    """Scans that fill it."""
    stood: int
    """Scans that stand for it (duplicate, other product, unknown product)."""
    required: bool
    split: bool
    quantity: int = 0


@dataclass(frozen=True)
class Scan:
    """A valid stored sale scan as matching sees it."""

    id: int
    code: str
    list_code: str
    """Empty when the catalog does not know the product."""
    duplicate: bool
    split_qty: int
    event_ms: int
    device: str = ""


@dataclass(frozen=True)
class Placement:
    scan: Scan
    matching: Matching
    fills: Line | None = None
    stands_for: Line | None = None


@dataclass(frozen=True)
class TicketRef:
    id: int
    institution: str
    terminal: str
    number: str
    time_ms: int


def place(lines: Sequence[Line], scan: Scan) -> Placement:
    """Where `scan` goes on a ticket of `lines` (their counters move). A split scan fills a split line first, a
    whole pack a whole-pack line first; a scan standing for a line takes the first with a unit still without code,
    lines that require a code before exempt ones.

    >>> lines = [Line(1, 1, "XA01", 2, 0, 0, True, False), Line(2, 2, "XB02", 1, 0, 0, True, False)]
    >>> place(lines, Scan(7, "c", "XC03", False, 0, 0)).stands_for.line_no
    1
    >>> place(lines, Scan(8, "d", "XB02", False, 0, 0)).fills.line_no
    2
    """
    if not scan.list_code:
        return _stand(lines, scan, Matching.UNKNOWN_PRODUCT)
    same = sorted((line for line in lines if line.list_code == scan.list_code),
                  key=lambda line: (line.split != (scan.split_qty > 0), line.line_no))
    if not same:
        return _stand(lines, scan, Matching.MISMATCH)
    if not scan.duplicate:
        for line in same:
            if line.scans < line.needed:
                line.scans += 1
                return Placement(scan, Matching.LINE, fills=line)
        return Placement(scan, Matching.LINE)
    return _stand(same, scan, Matching.LINE)


def _stand(lines: Iterable[Line], scan: Scan, matching: Matching) -> Placement:
    for line in sorted(lines, key=lambda line: (not line.required, line.line_no)):  # an exempt line needs no code
        if line.scans + line.stood < line.needed:
            line.stood += 1
            return Placement(scan, matching, stands_for=line)
    return Placement(scan, matching)


def lacking(lines: Sequence[Line]) -> dict[int, int]:
    """Line id -> units without any code scanned for them. A line's scans and the scans standing for it count
    first; what stands beyond a line's need (a wrong box scanned, then the right one) counts for other lines of
    the ticket still short, required lines first.

    >>> lacking([Line(1, 1, "XA01", 1, 1, 1, True, False), Line(2, 2, "XB02", 2, 0, 0, True, False)])
    {1: 0, 2: 1}
    """
    short = {line.id: max(0, line.needed - line.scans - line.stood) for line in lines}
    spare = sum(min(line.stood, max(0, line.scans + line.stood - line.needed)) for line in lines)
    for line in sorted(lines, key=lambda line: (not line.required, line.line_no)):
        taken = min(spare, short[line.id])
        short[line.id] -= taken
        spare -= taken
    return short


# the database side -----------------------------------------------------------------------------------------------

_LINE_COLUMNS = "id, line_no, list_code, needed, scans, stood, required, split, quantity"
_SCAN_COLUMNS = "id, code, list_code, verdict = 1, split_qty, event_ms, device"
_SALE_SCAN = "err = 0 AND op IN (1, 6)"
_LOOSE = f"ticket_id IS NULL AND {_SALE_SCAN} AND ticket = ''"
"""A sale scan tied to no ticket and carrying no ticket number: the predicate of the index events_loose."""


def ticket_lines(tx: Tx, ticket_id: int) -> list[Line]:
    return [Line(int(row[0]), int(row[1]), row[2], int(row[3]), int(row[4]), int(row[5]), bool(row[6]),
                 bool(row[7]), int(row[8]))
            for row in tx.all(f"SELECT {_LINE_COLUMNS} FROM ticket_lines WHERE ticket_id = ? ORDER BY line_no",
                              (ticket_id,))]


def _scan(row: Sequence[Any]) -> Scan:
    return Scan(int(row[0]), row[1], row[2], bool(row[3]), int(row[4]), int(row[5]), row[6])


def checkout_span(tx: Tx, terminal: str, time_ms: int, rules: Rules) -> tuple[int, int]:
    """The scan times (first, last) of the checkout a ticket of `terminal` settled at `time_ms` ends: since the
    ticket settled before it, within the window."""
    skew_ms = rules.match_after_ticket_s * 1000
    row = tx.one("SELECT max(time_ms) FROM tickets WHERE terminal = ? AND time_ms < ?", (terminal, time_ms))
    previous = int(row[0]) + skew_ms + 1 if row and row[0] is not None else 0
    return max(time_ms - rules.match_window_s * 1000, previous), time_ms + skew_ms


def _before_and_after(span: tuple[int, int], time_ms: int) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
    """A checkout's span split at its settlement, each part read nearest first."""
    return ("DESC", span[0], time_ms), ("ASC", max(span[0], time_ms + 1), span[1])


def loose_near(tx: Tx, terminal: str, list_code: str, time_ms: int, span: tuple[int, int], *, duplicate: bool,
               limit: int) -> list[Scan]:
    """Up to `limit` loose sale scans of one product made in a checkout `span` (`checkout_span`) at a terminal,
    nearest to its settlement first: two index range reads of at most `limit` rows each, however many scans
    wait."""
    if limit <= 0:
        return []
    found: list[Scan] = []
    for direction, low, high in _before_and_after(span, time_ms):
        found += [_scan(row) for row in tx.all(
            f"SELECT {_SCAN_COLUMNS} FROM events WHERE terminal = ? AND list_code = ? AND verdict = ? AND {_LOOSE} "
            f"AND event_ms BETWEEN ? AND ? ORDER BY event_ms {direction}, id LIMIT ?",
            (terminal, list_code, 1 if duplicate else 0, low, high, limit))]
    return sorted(found, key=lambda scan: (abs(scan.event_ms - time_ms), scan.id))[:limit]


def loose_any(tx: Tx, terminal: str, time_ms: int, span: tuple[int, int], limit: int) -> list[Scan]:
    """Loose sale scans of any product made in a checkout span, nearest to its settlement first (for a line
    still short when its check is due)."""
    found: list[Scan] = []
    for direction, low, high in _before_and_after(span, time_ms):
        found += [_scan(row) for row in tx.all(
            f"SELECT {_SCAN_COLUMNS} FROM events WHERE terminal = ? AND {_LOOSE} AND event_ms BETWEEN ? AND ? "
            f"ORDER BY event_ms {direction}, id LIMIT ?", (terminal, low, high, limit))]
    return sorted(found, key=lambda scan: (abs(scan.event_ms - time_ms), scan.id))[:limit]


class _Binder:
    """Writes placements of one ticket: events, line counters, rates, alerts, the outbox."""

    def __init__(self, tx: Tx, tally: rates.HourDeltas, ticket: TicketRef, *, terminal: str,
                 institution: str) -> None:
        self.tx = tx
        self.tally = tally
        self.ticket = ticket
        self.scan_terminal = terminal
        self.scan_institution = institution

    def bind(self, placement: Placement, *, regroup_ms: int | None = None, judged: bool = False) -> None:
        """Write one placement; `judged`: the scan was tied before (moved or placed again), its rates and alerts
        are written already."""
        tx, ticket, scan = self.tx, self.ticket, placement.scan
        filled, stood = placement.fills, placement.stands_for
        if filled is not None:
            tx.write("UPDATE ticket_lines SET scans = scans + 1 WHERE id = ?", (filled.id,))
            if filled.required:
                self.tally.add(ticket.institution, ticket.terminal, ticket.time_ms, units_covered=1)
        if stood is not None:
            tx.write("UPDATE ticket_lines SET stood = stood + 1 WHERE id = ?", (stood.id,))
        line = filled or stood
        if line is not None and line.scans + line.stood >= line.needed:
            alerts.auto_resolve(tx, "unscanned_sale", f"line:{line.id}", scan.event_ms,
                                "scanned late" if filled is not None else "a code was scanned late: see its alert")
        if not judged:
            self._count(placement)
            self._alert(placement)
        # line_id only for the scans that fill the line: they are the codes of its platform row; any other scan
        # tied to the ticket is withheld from the upload (outbox)
        tx.write("UPDATE events SET ticket_id = ?, line_id = ?, stands_for = ?, matching = ? WHERE id = ?",
                 (ticket.id, filled.id if filled else None, stood.id if stood else None, int(placement.matching),
                  scan.id))
        if regroup_ms is not None:
            outbox.regroup(tx, scan.id, now_ms=regroup_ms)

    def _count(self, placement: Placement) -> None:
        """Rates of a scan tied to a ticket whose product the catalog knows: consistency counts another product's
        code, the swap rate also a code already sold (docs/operations.md); each once."""
        if placement.matching == Matching.UNKNOWN_PRODUCT:
            return
        mismatched = placement.matching == Matching.MISMATCH
        self.tally.add(self.scan_institution, self.scan_terminal, placement.scan.event_ms, matched_scans=1,
                       mismatched_scans=int(mismatched), swapped_scans=int(mismatched or placement.scan.duplicate))

    def _alert(self, placement: Placement) -> None:
        """A duplicate's alert learns its ticket line; a box of a product the ticket does not bill raises one."""
        tx, ticket, scan, stood = self.tx, self.ticket, placement.scan, placement.stands_for
        if scan.duplicate:  # its duplicate alert is the one: another product besides is no second fraud
            where = f"ticket {ticket.number}" + (f" line {stood.line_no} ({stood.list_code})" if stood else "")
            alerts.add_evidence(tx, DUPLICATE_KINDS, scan.code, tickets=[ticket.id], detail_note=f"sold on {where}")
        elif placement.matching == Matching.MISMATCH:
            self._mismatch(placement)

    def _mismatch(self, placement: Placement) -> None:
        ticket, scan, line = self.ticket, placement.scan, placement.stands_for
        scanned = f"scanned {scan.list_code} (code {scan.code}), which the ticket does not bill (串换)"
        if line is not None:
            subject = f"line:{line.id}"
            detail = f"ticket {ticket.number} line {line.line_no} ({line.list_code} x{line.quantity}) left without " \
                     f"its code: {scanned}"
        else:
            subject = f"ticket:{ticket.id}"
            detail = f"ticket {ticket.number}, every billed line has its codes: {scanned}"
        alerts.raise_alert(self.tx, "product_mismatch", subject=subject, now_ms=scan.event_ms,
                           institution=ticket.institution, terminal=ticket.terminal, device=scan.device,
                           events=[scan.id], tickets=[ticket.id], detail=detail)


def match_scan(tx: Tx, tally: rates.HourDeltas, scan: StoredScan, rules: Rules, *, duplicate: bool) -> Matching:
    """Place a just-stored valid sale scan on its ticket, if that ticket is already here; rates go to `tally`."""
    seen = Scan(scan.id, scan.code, scan.list_code, duplicate, scan.split_qty, scan.event_ms, scan.device)
    if scan.ticket:
        row = tx.one("SELECT id, institution, terminal, number, time_ms FROM tickets WHERE terminal = ? AND number = ?",
                     (scan.terminal, scan.ticket))
        if row is None:
            return Matching.NONE
        ticket = TicketRef(*row)
        placement = place(ticket_lines(tx, ticket.id), seen)
    else:
        if not scan.list_code:
            return Matching.NONE
        row = tx.one("SELECT id, institution, terminal, number, time_ms FROM tickets WHERE terminal = ? "
                     "AND time_ms BETWEEN ? AND ? ORDER BY time_ms, id LIMIT 1",
                     (scan.terminal, scan.event_ms - rules.match_after_ticket_s * 1000,
                      scan.event_ms + rules.match_window_s * 1000))
        if row is None:
            return Matching.NONE
        ticket = TicketRef(*row)
        placement = place([line for line in ticket_lines(tx, ticket.id) if line.list_code == scan.list_code], seen)
        if placement.fills is None and placement.stands_for is None:
            return Matching.NONE  # not what its checkout bills, or beyond it: judged when the lines are checked
    _Binder(tx, tally, ticket, terminal=scan.terminal, institution=scan.institution).bind(placement)
    return placement.matching


def claim(tx: Tx, tally: rates.HourDeltas, ticket: TicketRef, rules: Rules, *, received_ms: int) -> None:
    """Tie the scans stored before a just-stored ticket to it: those carrying its number, then loose ones of its
    products nearest in time, as many as its lines have room for. Each scan tied leaves the platform row it may
    be in already (outbox.regroup: the caller holds outbox.PLAN_LOCK)."""
    lines = ticket_lines(tx, ticket.id)
    numbered = [_scan(row) for row in tx.all(
        f"SELECT {_SCAN_COLUMNS} FROM events WHERE terminal = ? AND ticket = ? AND ticket <> '' "  # events_by_ticket
        f"AND ticket_id IS NULL AND {_SALE_SCAN} ORDER BY id", (ticket.terminal, ticket.number))]
    products = sorted({line.list_code for line in lines})
    # every scan that fills a line first, then those that stand for one: a wrong box takes a line only if no
    # right box came for it; the ticket's own scans before loose ones
    fills = [scan for scan in numbered if scan.list_code in products and not scan.duplicate]
    stands = sorted((scan for scan in numbered if scan not in fills), key=lambda scan: scan.list_code not in products)
    placements = [place(lines, scan) for scan in fills]
    span = checkout_span(tx, ticket.terminal, ticket.time_ms, rules)
    for duplicate in (False, True):
        if duplicate:
            placements += [place(lines, scan) for scan in stands]
        for product in products:
            mine = [line for line in lines if line.list_code == product]
            room = sum(max(0, line.needed - line.scans - (line.stood if duplicate else 0)) for line in mine)
            placements += [place(mine, scan) for scan in loose_near(
                tx, ticket.terminal, product, ticket.time_ms, span, duplicate=duplicate, limit=room)]
    binder = _Binder(tx, tally, ticket, terminal=ticket.terminal, institution=ticket.institution)
    for placement in placements:
        binder.bind(placement, regroup_ms=received_ms)


def due_terminals(tx: Tx, now_ms: int) -> list[str]:
    """Terminals with ticket lines due for the unscanned check."""
    return [row[0] for row in tx.all("SELECT DISTINCT t.terminal FROM ticket_lines l JOIN tickets t "
                                     "ON t.id = l.ticket_id WHERE l.checked = 0 AND l.due_ms <= ?", (now_ms,))]


def check_due_lines(tx: Tx, rules: Rules, now_ms: int, *, limit: int = 1000) -> int:
    """Check the tickets whose lines are past their due time (by then every ticket of the window is here):
    a unit still without any code first takes back a scan of its checkout that a ticket settled later took
    while this one was not here yet, then a loose scan of its checkout (a box of a product it does not bill,
    scanned without the ticket number: 串换); what stays short raises unscanned_sale for its line. The number of
    lines checked. The caller holds outbox.PLAN_LOCK (a scan tied here may be in a platform row already)."""
    due = tx.all("SELECT DISTINCT l.ticket_id, t.institution, t.terminal, t.number, t.time_ms FROM ticket_lines l "
                 "JOIN tickets t ON t.id = l.ticket_id WHERE l.checked = 0 AND l.due_ms <= ? "
                 "ORDER BY t.time_ms LIMIT ?", (now_ms, limit))
    checked = 0
    for row in due:
        ticket = TicketRef(*row)
        lines = ticket_lines(tx, ticket.id)
        unchecked = {line_id for (line_id,) in tx.all("SELECT id FROM ticket_lines WHERE ticket_id = ? AND checked = 0",
                                                      (ticket.id,))}
        checked += len(unchecked)
        tx.write("UPDATE ticket_lines SET checked = 1 WHERE ticket_id = ?", (ticket.id,))
        tally = rates.HourDeltas()
        binder = _Binder(tx, tally, ticket, terminal=ticket.terminal, institution=ticket.institution)
        for scan in [_scan(found) for found in tx.all(  # scans beyond its lines: a line may have room again
                f"SELECT {_SCAN_COLUMNS} FROM events WHERE ticket_id = ? AND line_id IS NULL AND stands_for IS NULL "
                "ORDER BY id", (ticket.id,))]:
            placement = place(lines, scan)
            if placement.fills or placement.stands_for:
                binder.bind(placement, judged=True)
        short = lacking(lines)
        if any(short[line.id] for line in lines if line.required):
            span = checkout_span(tx, ticket.terminal, ticket.time_ms, rules)
            _take_back(tx, tally, binder, lines, short, span, rules.match_window_s * 1000, now_ms)
            wanted = sum(short[line.id] for line in lines if line.required)
            for scan in loose_any(tx, ticket.terminal, ticket.time_ms, span, wanted) if wanted else []:
                placement = place([line for line in lines if line.required and short[line.id]], scan)
                taken = placement.fills or placement.stands_for
                if taken is not None:
                    short[taken.id] -= 1
                    binder.bind(placement, regroup_ms=now_ms)
        tally.write(tx)
        for line in lines:
            if line.required and short[line.id] and line.id in unchecked:
                _unscanned(tx, ticket, line, short[line.id], now_ms)
    return checked


def _take_back(tx: Tx, tally: rates.HourDeltas, binder: _Binder, lines: list[Line], short: dict[int, int],
               span: tuple[int, int], window_ms: int, now_ms: int) -> None:
    """Loose scans of this checkout that fill a line of a ticket settled after it (which came first and took
    them) come back to the lines they were made for; that ticket's line is checked again."""
    ticket = binder.ticket
    for line in lines:
        if not (line.required and short[line.id]):
            continue
        for row in tx.all(
                "SELECT e.id, e.code, e.list_code, e.verdict = 1, e.split_qty, e.event_ms, e.device, l.id, l.required, "
                "t.institution, t.terminal, t.time_ms FROM tickets t JOIN ticket_lines l ON l.ticket_id = t.id "
                "JOIN events e ON e.line_id = l.id WHERE t.terminal = ? AND t.time_ms > ? AND t.time_ms <= ? "
                "AND l.list_code = ? AND e.ticket = '' AND e.event_ms BETWEEN ? AND ? ORDER BY e.event_ms DESC LIMIT ?",
                (ticket.terminal, span[1], span[1] + window_ms, line.list_code, span[0], span[1],
                 short[line.id])):
            placement = place([line], _scan(row))
            if placement.fills is None:
                continue
            short[line.id] -= 1
            tx.write("UPDATE ticket_lines SET scans = scans - 1, checked = 0 WHERE id = ?", (row[7],))
            if row[8]:
                tally.add(row[9], row[10], row[11], units_covered=-1)
            binder.bind(placement, regroup_ms=now_ms, judged=True)


def _unscanned(tx: Tx, ticket: TicketRef, line: Line, missing: int, now_ms: int) -> None:
    evidence = [event_id for (event_id,) in tx.all(
        "SELECT id FROM events WHERE line_id = ? UNION SELECT id FROM events WHERE stands_for = ? ORDER BY 1",
        (line.id, line.id))]
    others = f", {line.stood} more scanned but judged elsewhere" if line.stood else ""
    alerts.raise_alert(tx, "unscanned_sale", subject=f"line:{line.id}", now_ms=now_ms, institution=ticket.institution,
                       terminal=ticket.terminal, tickets=[ticket.id], events=evidence,
                       detail=f"ticket {ticket.number} line {line.line_no} ({line.list_code} x{line.quantity}): "
                              f"{line.scans} of {line.needed} codes scanned{others}; {missing} without any code "
                              "(无码销售)")
