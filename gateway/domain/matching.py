"""Sale scans against ticket lines: which scan a line takes, and how many of its units lack any code.

A scan carrying a ticket number belongs to that ticket. A scan without one (loose) belongs to the checkout it
was made in: a counter serves one customer at a time and boxes are scanned before the customer pays, so that is
the first ticket of its terminal settled after the scan (at most `match_after_ticket_s` before it, for clock skew
between POS and scanner; at most `match_window_s` after it). A ticket takes the loose scans of its products made
since the ticket before it, nearest first; what it does not bill stays loose until its lines are checked, and
then stands for a line still short (串换), never for another customer's. Either may arrive first: a scan after
its ticket is placed when stored (`find_place`, `bind_scan`), scans before it when the ticket is stored (`claim`).

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

from gateway.domain import alerts, outbox, rates, scans, tickets
from gateway.domain.scans import SaleScan, StoredScan
from gateway.domain.tickets import TicketRef
from gateway.rules import Rules
from gateway.store.base import Tx

__all__ = ["Matching", "Line", "Placement", "place", "lacking", "ticket_lines", "checkout_span",
           "loose_near", "loose_any", "TicketPlace", "find_place", "bind_scan", "claim",
           "check_due_lines", "DUPLICATE_KINDS"]

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
class Placement:
    scan: SaleScan
    matching: Matching
    fills: Line | None = None
    stands_for: Line | None = None


def place(lines: Sequence[Line], scan: SaleScan) -> Placement:
    """Where `scan` goes on a ticket of `lines` (their counters move). A split scan fills a split line first, a
    whole pack a whole-pack line first; a scan standing for a line takes the first with a unit still without code,
    lines that require a code before exempt ones.

    >>> lines = [Line(1, 1, "XA01", 2, 0, 0, True, False), Line(2, 2, "XB02", 1, 0, 0, True, False)]
    >>> place(lines, SaleScan(7, "c", "XC03", False, 0, 0)).stands_for.line_no
    1
    >>> place(lines, SaleScan(8, "d", "XB02", False, 0, 0)).fills.line_no
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


def _stand(lines: Iterable[Line], scan: SaleScan, matching: Matching) -> Placement:
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

def ticket_lines(tx: Tx, ticket_id: int) -> list[Line]:
    return [Line(line.id, line.line_no, line.list_code, line.needed, line.scans, line.stood, line.required,
                 line.split, line.quantity) for line in tickets.lines_of(tx, ticket_id)]


def checkout_span(tx: Tx, terminal: str, time_ms: int, rules: Rules) -> tuple[int, int]:
    """The scan times (first, last) of the checkout a ticket of `terminal` settled at `time_ms` ends: since the
    ticket settled before it, within the window."""
    skew_ms = rules.match_after_ticket_s * 1000
    before = tickets.settled_before(tx, terminal, time_ms)
    previous = before + skew_ms + 1 if before is not None else 0
    return max(time_ms - rules.match_window_s * 1000, previous), time_ms + skew_ms


def _before_and_after(span: tuple[int, int], time_ms: int) -> tuple[tuple[bool, int, int], tuple[bool, int, int]]:
    """A checkout's span split at its settlement, each part read nearest first (descending, low, high)."""
    return (True, span[0], time_ms), (False, max(span[0], time_ms + 1), span[1])


def loose_near(tx: Tx, terminal: str, list_code: str, time_ms: int, span: tuple[int, int], *, duplicate: bool,
               limit: int) -> list[SaleScan]:
    """Up to `limit` loose sale scans of one product made in a checkout `span` (`checkout_span`) at a terminal,
    nearest to its settlement first: two index range reads of at most `limit` rows each, however many scans
    wait."""
    if limit <= 0:
        return []
    found: list[SaleScan] = []
    for descending, low, high in _before_and_after(span, time_ms):
        found += scans.loose_sales(tx, terminal, low_ms=low, high_ms=high, descending=descending, limit=limit,
                                   list_code=list_code, duplicate=duplicate)
    return sorted(found, key=lambda scan: (abs(scan.event_ms - time_ms), scan.id))[:limit]


def loose_any(tx: Tx, terminal: str, time_ms: int, span: tuple[int, int], limit: int) -> list[SaleScan]:
    """Loose sale scans of any product made in a checkout span, nearest to its settlement first (for a line
    still short when its check is due)."""
    found: list[SaleScan] = []
    for descending, low, high in _before_and_after(span, time_ms):
        found += scans.loose_sales(tx, terminal, low_ms=low, high_ms=high, descending=descending, limit=limit)
    return sorted(found, key=lambda scan: (abs(scan.event_ms - time_ms), scan.id))[:limit]


class _Binder:
    """Writes placements of one ticket: events, line counters, rates, the alerts it learns of, the outbox; the
    alerts it finds (a mismatch) it hands back for the caller to raise."""

    def __init__(self, tx: Tx, hour_deltas: rates.HourDeltas, ticket: TicketRef, *, terminal: str,
                 institution: str) -> None:
        self.tx = tx
        self.hour_deltas = hour_deltas
        self.ticket = ticket
        self.scan_terminal = terminal
        self.scan_institution = institution

    def bind(self, placement: Placement, *, regroup_ms: int | None = None,
             judged: bool = False) -> list[alerts.Finding]:
        """Write one placement; the alert it finds, to raise. `judged`: the scan was tied before (moved or placed
        again), its rates and alerts are written already."""
        tx, ticket, scan = self.tx, self.ticket, placement.scan
        filled, stood = placement.fills, placement.stands_for
        if filled is not None:
            tickets.count_fill(tx, filled.id)
            if filled.required:
                self.hour_deltas.add(ticket.institution, ticket.terminal, ticket.time_ms, units_covered=1)
        if stood is not None:
            tickets.count_stand(tx, stood.id)
        line = filled or stood
        if line is not None and line.scans + line.stood >= line.needed:
            alerts.auto_resolve(tx, "unscanned_sale", f"line:{line.id}", scan.event_ms,
                                "scanned late" if filled is not None else "a code was scanned late: see its alert")
        found = []
        if not judged:
            self._count(placement)
            found = self._alert(placement)
        # line_id only for the scans that fill the line: they are the codes of its platform row; any other scan
        # tied to the ticket is withheld from the upload (outbox)
        scans.tie(tx, scan.id, ticket_id=ticket.id, line_id=filled.id if filled else None,
                  stands_for=stood.id if stood else None, matching=int(placement.matching))
        if regroup_ms is not None:
            outbox.regroup(tx, scan.id, now_ms=regroup_ms)
        return found

    def bind_and_raise(self, placement: Placement, *, regroup_ms: int | None = None, judged: bool = False) -> None:
        """`bind`, raising what it finds at once (a ticket claiming scans, a due line taking one)."""
        for finding in self.bind(placement, regroup_ms=regroup_ms, judged=judged):
            alerts.raise_found(self.tx, finding)

    def _count(self, placement: Placement) -> None:
        """Rates of a scan tied to a ticket whose product the catalog knows: consistency counts another product's
        code, the swap rate also a code already sold (docs/operations.md); each once."""
        if placement.matching == Matching.UNKNOWN_PRODUCT:
            return
        mismatched = placement.matching == Matching.MISMATCH
        self.hour_deltas.add(self.scan_institution, self.scan_terminal, placement.scan.event_ms, matched_scans=1,
                       mismatched_scans=int(mismatched), swapped_scans=int(mismatched or placement.scan.duplicate))

    def _alert(self, placement: Placement) -> list[alerts.Finding]:
        """A duplicate's alert learns its ticket line; a box of a product the ticket does not bill is a finding."""
        tx, ticket, scan, stood = self.tx, self.ticket, placement.scan, placement.stands_for
        if scan.duplicate:  # its duplicate alert is the one: another product besides is no second fraud
            where = f"ticket {ticket.number}" + (f" line {stood.line_no} ({stood.list_code})" if stood else "")
            alerts.add_evidence(tx, DUPLICATE_KINDS, scan.code, tickets=[ticket.id], detail_note=f"sold on {where}")
        elif placement.matching == Matching.MISMATCH:
            return [self._mismatch(placement)]
        return []

    def _mismatch(self, placement: Placement) -> alerts.Finding:
        ticket, scan, line = self.ticket, placement.scan, placement.stands_for
        scanned = f"scanned {scan.list_code} (code {scan.code}), which the ticket does not bill (串换)"
        if line is not None:
            subject = f"line:{line.id}"
            detail = f"ticket {ticket.number} line {line.line_no} ({line.list_code} x{line.quantity}) left without " \
                     f"its code: {scanned}"
        else:
            subject = f"ticket:{ticket.id}"
            detail = f"ticket {ticket.number}, every billed line has its codes: {scanned}"
        return alerts.Finding(kind="product_mismatch", subject=subject, detail=detail, now_ms=scan.event_ms,
                              institution=ticket.institution, terminal=ticket.terminal, device=scan.device,
                              events=(scan.id,), tickets=(ticket.id,))


@dataclass(frozen=True)
class TicketPlace:
    """Where a just-stored sale scan goes on a ticket already here (`find_place`), before it is written
    (`bind_scan`)."""

    ticket: TicketRef
    placement: Placement


def find_place(tx: Tx, scan: StoredScan, rules: Rules, *, duplicate: bool) -> TicketPlace | None:
    """Where a just-stored valid sale scan goes on its ticket, if that ticket is already here (read only)."""
    seen = SaleScan(scan.id, scan.code, scan.list_code, duplicate, scan.split_qty, scan.event_ms, scan.device)
    if scan.ticket:
        ticket = tickets.by_number(tx, scan.terminal, scan.ticket)
        if ticket is None:
            return None
        return TicketPlace(ticket, place(ticket_lines(tx, ticket.id), seen))
    if not scan.list_code:
        return None
    ticket = tickets.first_settled_between(tx, scan.terminal, scan.event_ms - rules.match_after_ticket_s * 1000,
                                           scan.event_ms + rules.match_window_s * 1000)
    if ticket is None:
        return None
    placement = place([line for line in ticket_lines(tx, ticket.id) if line.list_code == scan.list_code], seen)
    if placement.fills is None and placement.stands_for is None:
        return None  # not what its checkout bills, or beyond it: judged when the lines are checked
    return TicketPlace(ticket, placement)


def bind_scan(tx: Tx, hour_deltas: rates.HourDeltas, scan: StoredScan,
              found: TicketPlace) -> list[alerts.Finding]:
    """Write where `find_place` put a scan: its line, its tie to the ticket, its rates (to `hour_deltas`); the
    alert it finds (a mismatch), for the pipeline to raise."""
    binder = _Binder(tx, hour_deltas, found.ticket, terminal=scan.terminal, institution=scan.institution)
    return binder.bind(found.placement)


def claim(tx: Tx, hour_deltas: rates.HourDeltas, ticket: TicketRef, rules: Rules, *, received_ms: int) -> None:
    """Tie the scans stored before a just-stored ticket to it: those carrying its number, then loose ones of its
    products nearest in time, as many as its lines have room for. Each scan tied leaves the platform row it may
    be in already (outbox.regroup: the caller holds outbox.PLAN_LOCK)."""
    lines = ticket_lines(tx, ticket.id)
    numbered = scans.numbered_sales(tx, ticket.terminal, ticket.number)
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
    binder = _Binder(tx, hour_deltas, ticket, terminal=ticket.terminal, institution=ticket.institution)
    for placement in placements:
        binder.bind_and_raise(placement, regroup_ms=received_ms)


def check_due_lines(tx: Tx, rules: Rules, now_ms: int, *, limit: int = 1000) -> int:
    """Check the tickets whose lines are past their due time (by then every ticket of the window is here):
    a unit still without any code first takes back a scan of its checkout that a ticket settled later took
    while this one was not here yet, then a loose scan of its checkout (a box of a product it does not bill,
    scanned without the ticket number: 串换); what stays short raises unscanned_sale for its line. The number of
    lines checked. The caller holds outbox.PLAN_LOCK (a scan tied here may be in a platform row already)."""
    checked = 0
    for ticket in tickets.due_tickets(tx, now_ms, limit=limit):
        lines = ticket_lines(tx, ticket.id)
        unchecked = tickets.check_lines(tx, ticket.id)
        checked += len(unchecked)
        hour_deltas = rates.HourDeltas()
        binder = _Binder(tx, hour_deltas, ticket, terminal=ticket.terminal, institution=ticket.institution)
        for scan, _ in scans.beyond_lines(tx, ticket.id):  # scans beyond its lines: a line may have room again
            placement = place(lines, scan)
            if placement.fills or placement.stands_for:
                binder.bind_and_raise(placement, judged=True)
        short = lacking(lines)
        if any(short[line.id] for line in lines if line.required):
            span = checkout_span(tx, ticket.terminal, ticket.time_ms, rules)
            _take_back(tx, hour_deltas, binder, lines, short, span, rules.match_window_s * 1000, now_ms)
            wanted = sum(short[line.id] for line in lines if line.required)
            for scan in loose_any(tx, ticket.terminal, ticket.time_ms, span, wanted) if wanted else []:
                placement = place([line for line in lines if line.required and short[line.id]], scan)
                taken = placement.fills or placement.stands_for
                if taken is not None:
                    short[taken.id] -= 1
                    binder.bind_and_raise(placement, regroup_ms=now_ms)
        hour_deltas.write(tx)
        for line in lines:
            if line.required and short[line.id] and line.id in unchecked:
                _unscanned(tx, ticket, line, short[line.id], now_ms)
    return checked


def _take_back(tx: Tx, hour_deltas: rates.HourDeltas, binder: _Binder, lines: list[Line], short: dict[int, int],
               span: tuple[int, int], window_ms: int, now_ms: int) -> None:
    """Loose scans of this checkout that fill a line of a ticket settled after it (which came first and took
    them) come back to the lines they were made for; that ticket's line is checked again."""
    ticket = binder.ticket
    for line in lines:
        if not (line.required and short[line.id]):
            continue
        for taken in scans.taken_by_later_tickets(tx, ticket.terminal, settled_after_ms=span[1],
                                                  settled_until_ms=span[1] + window_ms, list_code=line.list_code,
                                                  made_from_ms=span[0], made_until_ms=span[1], limit=short[line.id]):
            placement = place([line], taken.scan)
            if placement.fills is None:
                continue
            short[line.id] -= 1
            tickets.give_back_fill(tx, taken.line_id)
            if taken.line_required:
                hour_deltas.add(taken.institution, taken.terminal, taken.ticket_time_ms, units_covered=-1)
            binder.bind_and_raise(placement, regroup_ms=now_ms, judged=True)


def _unscanned(tx: Tx, ticket: TicketRef, line: Line, missing: int, now_ms: int) -> None:
    evidence = scans.of_line(tx, line.id)
    others = f", {line.stood} more scanned but judged elsewhere" if line.stood else ""
    alerts.raise_alert(tx, "unscanned_sale", subject=f"line:{line.id}", now_ms=now_ms, institution=ticket.institution,
                       terminal=ticket.terminal, tickets=[ticket.id], events=evidence,
                       detail=f"ticket {ticket.number} line {line.line_no} ({line.list_code} x{line.quantity}): "
                              f"{line.scans} of {line.needed} codes scanned{others}; {missing} without any code "
                              "(无码销售)")
