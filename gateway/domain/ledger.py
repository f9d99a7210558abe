"""The per-code sale ledger and per-institution stock: duplicate sales and the fraud alerts they raise.

Our duplicate rule (docs/platform.md, "Split packs"): per code, whole packs sold minus
returned (`whole_net`) and split units sold minus returned (`split_net`). A sale is a
duplicate when a whole-pack sale of the code is outstanding, when a whole-pack sale
meets split units already sold, or when split units would exceed the pack size. A sale
return gives back what it names, so a return followed by a resale is no duplicate.

A duplicate raises one alert (one fraud, one alert), by where the earlier sale was: the
same institution (repeat_sale); a hospital before a pharmacy (returned_drug, 回流); another
region within the configured window (distant_sale, a cloned code); any other institution
(cross_institution_sale).

Stock: packs taken in (purchase or stocktake scans, each code once per institution)
against packs sold, per institution and product. A code counts as one pack sold while
it is sold (whole or split units outstanding): its first sale moves the stock, a
duplicate sale of it does not (the duplicate's alert is the finding, not a second
pack), and the return that leaves nothing outstanding moves it back. Sold above taken
in plus a margin raises sales_above_purchases. The rule starts for an institution with
its first inbound or stocktake scan, so a pharmacy that has not begun scanning what it
receives is not flooded with one alert per product.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain import scans
from gateway.domain.alerts import Finding
from gateway.domain.scans import StoredScan
from gateway.rules import Rules
from gateway.store.base import Tx
from gateway.wire.protocol import Operation

__all__ = ["Sale", "EarlierSale", "judge_sale", "book"]

_EVIDENCE_SALES = 20


@dataclass(frozen=True)
class EarlierSale:
    """Where the code was last sold, as the ledger keeps it."""

    institution: str
    institution_type: str
    region: str
    at_ms: int


@dataclass(frozen=True)
class Sale:
    """What the ledger finds of a valid sale scan before booking it."""

    duplicate: bool
    """A whole pack of the code is outstanding, or the split units would exceed the pack."""
    opens_pack: bool
    """Nothing of the code was sold: a pack leaves the stock."""
    earlier: EarlierSale | None
    """The code's last sale, when the ledger has one."""


def judge_sale(tx: Tx, scan: StoredScan) -> Sale | None:
    """The ledger's finding on a scan (read only); None for a scan that is no valid sale with a code."""
    if scan.err or not scan.code or not scan.is_sale:
        return None
    row = tx.one("SELECT whole_net, split_net, last_institution, last_type, last_region, last_ms FROM codes "
                 "WHERE code = ?", (scan.code,))
    whole_net, split_net = (row[0], row[1]) if row else (0, 0)
    if scan.split_qty:
        duplicate = whole_net > 0 or (scan.pack_size > 0 and split_net + scan.split_qty > scan.pack_size)
    else:
        duplicate = whole_net > 0 or split_net > 0
    earlier = EarlierSale(row[2], row[3], row[4], row[5]) if row is not None else None
    return Sale(duplicate=bool(duplicate), opens_pack=whole_net == 0 and split_net == 0, earlier=earlier)


def book(tx: Tx, scan: StoredScan, sale: Sale | None, rules: Rules) -> list[Finding]:
    """Book a valid scan in the ledger and the stock (`sale`: what `judge_sale` found); the alerts it raises."""
    if scan.err or not scan.code:
        return []
    if sale is not None:
        return _sale(tx, scan, sale, rules)
    if scan.op == Operation.SALE_RETURN:
        _sale_return(tx, scan)
    elif scan.op in (Operation.PURCHASE, Operation.STOCKTAKE):
        if tx.execute("INSERT INTO code_inbound (code, institution) VALUES (?, ?) ON CONFLICT DO NOTHING",
                      (scan.code, scan.institution)):
            _stock(tx, scan, inbound=1)
    elif scan.op == Operation.PURCHASE_RETURN:
        if tx.execute("DELETE FROM code_inbound WHERE code = ? AND institution = ?", (scan.code, scan.institution)):
            _stock(tx, scan, inbound=-1)
    return []


def _sale(tx: Tx, scan: StoredScan, sale: Sale, rules: Rules) -> list[Finding]:
    units = scan.split_qty
    found: list[Finding] = []
    tx.write(
        "INSERT INTO codes (code, whole_net, split_net, sales, last_event, last_institution, last_type, last_region, "
        "last_ms) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET "
        "whole_net = codes.whole_net + excluded.whole_net, split_net = codes.split_net + excluded.split_net, "
        "sales = codes.sales + 1, last_event = excluded.last_event, last_institution = excluded.last_institution, "
        "last_type = excluded.last_type, last_region = excluded.last_region, last_ms = excluded.last_ms",
        (scan.code, 0 if units else 1, units, scan.id, scan.institution, scan.institution_type, scan.region,
         scan.event_ms),
    )
    if sale.opens_pack:
        sold, inbound, takes_stock = _stock(tx, scan, sold=1)
        if sold > inbound + rules.stock_margin and takes_stock:
            found.append(Finding(
                kind="sales_above_purchases", subject=f"{scan.institution}|{scan.pid}", now_ms=scan.event_ms,
                institution=scan.institution, terminal=scan.terminal, events=(scan.id,),
                detail=f"product {scan.pid}: {sold} packs sold, {inbound} taken in (margin {rules.stock_margin})"))
    if sale.duplicate and sale.earlier is not None:
        found.append(_duplicate_alert(tx, scan, rules, sale.earlier))
    return found


def _duplicate_alert(tx: Tx, scan: StoredScan, rules: Rules, earlier: EarlierSale) -> Finding:
    evidence = tuple(scans.latest_sales(tx, scan.code, limit=_EVIDENCE_SALES))

    def found(kind: str, detail: str) -> Finding:
        return Finding(kind=kind, subject=scan.code, detail=detail, now_ms=scan.event_ms,
                       institution=scan.institution, terminal=scan.terminal, device=scan.device, events=evidence)

    last_institution, last_type, last_region = earlier.institution, earlier.institution_type, earlier.region
    sold_as = f"split {scan.split_qty} units" if scan.split_qty else "whole pack"
    apart_s = abs(scan.event_ms - earlier.at_ms) // 1000
    distant = bool(last_region and scan.region and last_region != scan.region and apart_s <= rules.distant_window_s)
    if last_institution == scan.institution:
        return found("repeat_sale", f"code {scan.code} sold again at {scan.institution} ({sold_as}) beyond its "
                     "split-pack allowance")
    if last_type == "hospital" and scan.institution_type == "pharmacy":
        return found("returned_drug", f"code {scan.code} dispensed at hospital {last_institution}, now sold at "
                     f"pharmacy {scan.institution} (回流药 suspicion)" + (
                         f", regions {last_region} and {scan.region} {apart_s} s apart" if distant else ""))
    if distant:
        return found("distant_sale", f"code {scan.code} sold at {last_institution} in region {last_region} and at "
                     f"{scan.institution} in {scan.region} {apart_s} s apart (cloned code suspicion)")
    return found("cross_institution_sale", f"code {scan.code} sold at {last_institution}, now at {scan.institution}")


def _sale_return(tx: Tx, scan: StoredScan) -> None:
    row = tx.one("SELECT whole_net, split_net FROM codes WHERE code = ?", (scan.code,))
    if row is None:
        return
    whole_net, split_net = row
    if scan.split_qty:
        split_net = max(0, split_net - scan.split_qty)
    else:
        whole_net = max(0, whole_net - 1)
    closes_pack = (row[0] > 0 or row[1] > 0) and whole_net == split_net == 0  # nothing of it is sold any more
    tx.write("UPDATE codes SET whole_net = ?, split_net = ? WHERE code = ?", (whole_net, split_net, scan.code))
    if closes_pack:
        _stock(tx, scan, sold=-1)


def _stock(tx: Tx, scan: StoredScan, *, inbound: int = 0, sold: int = 0) -> tuple[int, int, bool]:
    """Move the institution's stock of the product; (sold, inbound) after the move, and whether the institution
    scans what it takes in (the stock rule starts with its first inbound scan), in one round trip."""
    row = tx.one(
        "INSERT INTO stock (institution, pid, inbound, sold) VALUES (?, ?, ?, ?) ON CONFLICT (institution, pid) "
        "DO UPDATE SET inbound = stock.inbound + excluded.inbound, sold = stock.sold + excluded.sold "
        "RETURNING sold, inbound, EXISTS (SELECT 1 FROM stock AS taken WHERE taken.institution = ? "
        "AND taken.inbound > 0)",
        (scan.institution, scan.pid, inbound, sold, scan.institution),
    )
    assert row is not None
    return int(row[0]), int(row[1]), bool(row[2])
