"""A working day of counter traffic with frauds injected where the test knows them, for measuring the alerts.

Five counters: two at pharmacy P-A, one at pharmacy P-B and one at hospital H-1 (region 440300), one at pharmacy
P-F far away (110100). Each serves a customer every few minutes: tickets of 1-4 lines, several boxes per line,
two lines of one product, split packs opened on one ticket and sold on by the next ones, exempt products, sale
returns whose boxes go back on the shelf and are sold again. Half the checkouts scan the ticket barcode first,
the others scan boxes loose and leave the matching to time. Boxes are scanned before the customer pays, so the
ticket is settled after its scans; some tickets reach the gateway minutes late, and counter A2 drops off the
network twice, so its scans arrive after their tickets. Every box sold was taken in by a purchase scan, in a
morning or a midday delivery.

Injected, each on a checkout of its own and recorded with the subject its alert must have:
- unscanned_sale: one unit of a line sold without any scan (a whole line of 1, or 2 of 3 scanned);
- product_mismatch: one box of a line replaced by a box of a product the ticket does not bill;
- repeat_sale: one box's scan replaced by a code this pharmacy sold earlier today;
- returned_drug: one box's scan replaced by a code the hospital dispensed earlier (回流);
- distant_sale: at P-F, one box's scan replaced by a code sold at P-A or P-B earlier today (cloned code);
- sales_above_purchases: boxes of a product no delivery brought, sold at a pharmacy that scans its deliveries.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from scenario import Scenario, at

from gateway.domain import catalog
from gateway.wire.protocol import Operation

PRODUCTS = {"8123456": ("XA01", 24), "8654321": ("XB02", 20), "8111112": ("XH08", 30), "8222223": ("XK09", 10),
            "8333334": ("XM10", 12)}
"""7-digit product prefix -> (list code, pack size); every one requires a code."""
OFF_BOOKS = {"8444445": ("XN11", 10), "8555556": ("XP12", 10)}
"""Products no delivery brings: what a pharmacy sells of them was never taken in."""
EXEMPT = ("8111111", "XD04")
"""A product sold without a code (中药颗粒): its lines are never scanned."""
CATALOG = "pid,list_code,name,pack_size,code_required\n" + "".join(
    f"{prefix},{code},product {code},{pack},1\n" for prefix, (code, pack) in {**PRODUCTS, **OFF_BOOKS}.items()) + \
    f"{EXEMPT[0]},{EXEMPT[1]},herbal granules,10,0\n"
COUNTERS = [("dev-a1", "A1", "P-A", "pharmacy", "440300"), ("dev-a2", "A2", "P-A", "pharmacy", "440300"),
            ("dev-b1", "B1", "P-B", "pharmacy", "440300"), ("dev-h1", "H1", "H-1", "hospital", "440300"),
            ("dev-f1", "F1", "P-F", "pharmacy", "110100")]
KINDS = ("unscanned_sale", "product_mismatch", "repeat_sale", "returned_drug", "distant_sale",
         "sales_above_purchases")
MINUTE = 60_000
OFFLINE = {"A2": [(at(10, 10), at(10, 19)), (at(12, 40), at(12, 47))]}
"""Terminal -> spells when its counter is off the network: its scans arrive when the spell ends."""


@dataclass
class _Checkout:
    terminal: str
    device: str
    institution: str
    number: str
    time_ms: int
    lines: list[tuple[str, int, bool]] = field(default_factory=list)
    """(list code, quantity, split)."""
    boxes: list[tuple[int, str, int]] = field(default_factory=list)
    """(line number, code, split units) in the order scanned."""
    numbered: bool = False


class Traffic:
    """The day, built from a seed; `play` runs it through a Scenario; `expected` is what must be alerted."""

    def __init__(self, seed: int, *, start_h: int = 9, hours: int = 5, quota: int = 6) -> None:
        self.chance = random.Random(seed)
        self.quota = {kind: quota for kind in KINDS if kind != "sales_above_purchases"}
        self.expected: set[tuple[str, Any]] = set()
        """(kind, subject): a ticket line as (terminal, number, line no), a code, or "institution|pid"."""
        self.happenings: list[tuple[int, int, str, dict[str, Any]]] = []
        self._order = itertools.count()
        self._serial = itertools.count(1)
        self.inbound: list[tuple[str, str, int]] = []
        """(institution, code, first sale ms): what the deliveries bring."""
        self._shelf: dict[tuple[str, str], list[tuple[int, str]]] = {}
        """(institution, prefix) -> returned boxes (back on the shelf from, code)."""
        self._opened: dict[tuple[str, str], tuple[str, int]] = {}
        """(institution, prefix) -> the opened box split sales take units from (code, units left)."""
        self._sold: list[tuple[int, str, str, str]] = []
        """(time, institution, prefix, code) of whole boxes sold and kept: what a fraud can scan again."""
        self.checkouts = 0
        self._day(start_h, hours)

    def _code(self, prefix: str) -> str:
        return f"{prefix}{next(self._serial):013d}"

    def _at(self, arrives: int, kind: str, **data: Any) -> None:
        heapq.heappush(self.happenings, (arrives, next(self._order), kind, data))

    def _day(self, start_h: int, hours: int) -> None:
        slots = []
        for device, terminal, institution, _, _ in COUNTERS:
            moment = at(start_h) + self.chance.randint(0, 4 * MINUTE)
            while moment < at(start_h + hours):
                slots.append((moment, device, terminal, institution))
                moment += self.chance.randint(2 * MINUTE, 8 * MINUTE)
        for moment, device, terminal, institution in sorted(slots):
            self._checkout(_Checkout(terminal, device, institution, f"{terminal}-{len(slots)}-{self.checkouts:04d}",
                                     moment))
        for institution, device, terminal, prefix in (("P-B", "dev-b1", "B1", "8444445"),
                                                      ("P-A", "dev-a2", "A2", "8555556")):
            # boxes that no delivery brought, sold on a ticket of their own
            sale = _Checkout(terminal, device, institution, f"{terminal}-off-{prefix}",
                             at(start_h + 2) + self.chance.randint(0, 60) * MINUTE, numbered=True)
            sale.lines.append((OFF_BOOKS[prefix][0], 2, False))
            sale.boxes += [(1, self._code(prefix), 0), (1, self._code(prefix), 0)]
            self._send(sale)
            self.expected.add(("sales_above_purchases", f"{institution}|{prefix}"))
        for moment in range(at(start_h) - 30 * MINUTE, at(start_h + hours + 1), MINUTE):
            self._at(moment, "sweep")

    def _checkout(self, sale: _Checkout) -> None:
        self.checkouts += 1
        sale.numbered = self.chance.random() < 0.5
        prefixes = list(PRODUCTS)
        for _ in range(self.chance.choice([1, 1, 2, 2, 3, 4])):
            billed = [key for key, value in PRODUCTS.items() if any(line[0] == value[0] for line in sale.lines)]
            if billed and self.chance.random() < 0.1:  # a second line of a product already billed
                prefix = billed[0]
            elif self.chance.random() < 0.08:
                sale.lines.append((EXEMPT[1], self.chance.randint(1, 3), False))
                continue
            else:
                prefix = self.chance.choice(prefixes)
            split = self.chance.random() < 0.15 and not any(line[0] == PRODUCTS[prefix][0] and line[2]
                                                             for line in sale.lines)
            line_no = len(sale.lines) + 1
            if split:
                units = self.chance.randint(2, 8)
                sale.lines.append((PRODUCTS[prefix][0], units, True))
                sale.boxes.append((line_no, self._split_box(sale, prefix, units), units))
            else:
                quantity = self.chance.choice([1, 1, 1, 2, 2, 3])
                sale.lines.append((PRODUCTS[prefix][0], quantity, False))
                sale.boxes += [(line_no, self._whole_box(sale, prefix), 0) for _ in range(quantity)]
        self._inject(sale)
        self._send(sale)

    def _whole_box(self, sale: _Checkout, prefix: str) -> str:
        shelf = self._shelf.get((sale.institution, prefix), [])
        for entry in shelf:
            if entry[0] < sale.time_ms - 5 * MINUTE:  # a box returned earlier, sold again
                shelf.remove(entry)
                return entry[1]
        code = self._code(prefix)
        self.inbound.append((sale.institution, code, sale.time_ms))
        if sale.institution == "H-1" or self.chance.random() > 0.06:
            self._sold.append((sale.time_ms, sale.institution, prefix, code))
        else:  # returned a while later, then back on the shelf
            back = sale.time_ms + self.chance.randint(10, 60) * MINUTE
            device = next(counter[0] for counter in COUNTERS if counter[1] == sale.terminal)
            self._at(back, "scan", device=device, code=code, when=back, op=Operation.SALE_RETURN)
            self._shelf.setdefault((sale.institution, prefix), []).append((back, code))
        return code

    def _split_box(self, sale: _Checkout, prefix: str, units: int) -> str:
        opened = self._opened.get((sale.institution, prefix))
        if opened is None or opened[1] < units:
            opened = (self._code(prefix), PRODUCTS[prefix][1])
            self.inbound.append((sale.institution, opened[0], sale.time_ms))
        self._opened[(sale.institution, prefix)] = (opened[0], opened[1] - units)
        return opened[0]

    def _inject(self, sale: _Checkout) -> None:
        """At most one fraud per checkout, on a line whose product is on no other line of the ticket."""
        if sale.institution == "H-1" or self.chance.random() > 0.2:
            return
        alone = [number for number, (code, _, _) in enumerate(sale.lines, start=1) if code != EXEMPT[1]
                 and sum(line[0] == code for line in sale.lines) == 1]
        if not alone:
            return
        line_no = self.chance.choice(alone)
        list_code, _, split = sale.lines[line_no - 1]
        prefix = next(key for key, value in PRODUCTS.items() if value[0] == list_code)
        kinds = [kind for kind, left in self.quota.items() if left and (kind in ("unscanned_sale", "product_mismatch")
                 or not split)]
        if sale.institution == "P-F":
            kinds = [kind for kind in kinds if kind != "returned_drug"]
        else:
            kinds = [kind for kind in kinds if kind != "distant_sale"]
        if not kinds:
            return
        kind = self.chance.choice(kinds)
        mine = [index for index, box in enumerate(sale.boxes) if box[0] == line_no]
        index = mine[-1]
        replaced = sale.boxes[index][1]  # sold without its code being scanned: no fraud can scan it again
        self._sold = [entry for entry in self._sold if entry[3] != replaced]
        if kind == "unscanned_sale":
            del sale.boxes[index]
            subject: Any = (sale.terminal, sale.number, line_no)
        elif kind == "product_mismatch":
            billed = {line[0] for line in sale.lines}
            other = self.chance.choice([key for key, value in PRODUCTS.items() if value[0] not in billed])
            code = self._code(other)
            self.inbound.append((sale.institution, code, sale.time_ms))
            sale.boxes[index] = (line_no, code, 0)
            subject = (sale.terminal, sale.number, line_no)
        else:
            def earlier(where: set[str]) -> list[tuple[int, str, str, str]]:
                return [entry for entry in self._sold if entry[1] in where and entry[2] == prefix
                        and entry[0] < sale.time_ms - 10 * MINUTE]
            where = {"repeat_sale": {sale.institution}, "returned_drug": {"H-1"},
                     "distant_sale": {"P-A", "P-B"}}[kind]
            candidates = earlier(where)
            if not candidates:
                return
            entry = self.chance.choice(candidates)
            self._sold.remove(entry)
            sale.boxes[index] = (line_no, entry[3], 0)
            subject = entry[3]
        self.quota[kind] -= 1
        self.expected.add((kind, subject))

    def _send(self, sale: _Checkout) -> None:
        """The checkout's scans (before it is paid) and its ticket (at payment, or late)."""
        moment = sale.time_ms - 10_000 * (len(sale.boxes) + 1)
        op = Operation.DISPENSE if sale.institution == "H-1" else Operation.SALE
        spells = OFFLINE.get(sale.terminal, [])
        for _, code, units in sale.boxes:
            moment += self.chance.randint(4_000, 10_000)
            arrives = next((end + 5_000 for start, end in spells if start <= moment < end), moment)
            self._at(arrives, "scan", device=sale.device, code=code, when=moment, split=units, op=op,
                     ticket=sale.number if sale.numbered else "")
        late = self.chance.randint(30_000, 240_000) if self.chance.random() < 0.12 else 0
        self._at(sale.time_ms + late, "ticket", terminal=sale.terminal, number=sale.number, when=sale.time_ms,
                 lines=tuple(sale.lines))

    def play(self, world: Scenario) -> None:
        """Register the counters and the catalog, deliver the stock, then run the day in order of arrival."""
        for device, terminal, institution, kind, region in COUNTERS:
            world.counter(device, terminal, institution, kind=kind, region=region)
        with world.store.transaction() as tx:
            catalog.replace_products(tx, catalog.read_csv(CATALOG))
        taker = {institution: device for device, _, institution, _, _ in reversed(COUNTERS)}
        for delivery, first_sale, last_sale in ((at(8), 0, at(12)), (at(11, 30), at(12), at(23))):
            for institution, device in taker.items():
                codes = [code for place, code, sold in self.inbound
                         if place == institution and first_sale <= sold < last_sale]
                world.scan_many(device, codes, delivery, op=Operation.PURCHASE)
        while self.happenings:
            arrives, _, kind, data = heapq.heappop(self.happenings)
            if kind == "scan":
                world.scan(data["device"], data["code"], data["when"], op=data.get("op", Operation.SALE),
                           ticket=data.get("ticket", ""), split=data.get("split", 0), received=arrives)
            elif kind == "ticket":
                world.ticket(data["terminal"], data["number"], data["when"], *data["lines"], received=arrives)
            else:
                world.sweep(arrives)
