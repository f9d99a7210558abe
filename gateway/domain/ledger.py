"""The per-code sale ledger and per-institution stock: duplicate sales and the fraud alerts they raise.

Our duplicate rule (REFERENCE.md, "Split packs"): per code, whole packs sold minus
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

from gateway.domain import alerts
from gateway.domain.scans import StoredScan
from gateway.rules import Rules
from gateway.store.base import Tx
from gateway.wire.protocol import Operation

__all__ = ["apply"]

_EVIDENCE_SALES = 20


def apply(tx: Tx, scan: StoredScan, rules: Rules) -> bool:
    """Book a valid scan in the ledger and raise its alerts; True when it is a duplicate sale."""
    if scan.err or not scan.code:
        return False
    if scan.is_sale:
        return _sale(tx, scan, rules)
    if scan.op == Operation.SALE_RETURN:
        _sale_return(tx, scan)
    elif scan.op in (Operation.PURCHASE, Operation.STOCKTAKE):
        if tx.execute("INSERT INTO code_inbound (code, institution) VALUES (?, ?) ON CONFLICT DO NOTHING",
                      (scan.code, scan.institution)):
            _stock(tx, scan, inbound=1)
    elif scan.op == Operation.PURCHASE_RETURN:
        if tx.execute("DELETE FROM code_inbound WHERE code = ? AND institution = ?", (scan.code, scan.institution)):
            _stock(tx, scan, inbound=-1)
    return False


def _sale(tx: Tx, scan: StoredScan, rules: Rules) -> bool:
    row = tx.one("SELECT whole_net, split_net, last_institution, last_type, last_region, last_ms FROM codes "
                 "WHERE code = ?", (scan.code,))
    whole_net, split_net = (row[0], row[1]) if row else (0, 0)
    units = scan.split_qty
    if units:
        duplicate = whole_net > 0 or (scan.pack_size > 0 and split_net + units > scan.pack_size)
    else:
        duplicate = whole_net > 0 or split_net > 0
    opens_pack = whole_net == 0 and split_net == 0  # the code was not sold: a pack leaves the stock
    tx.write(
        "INSERT INTO codes (code, whole_net, split_net, sales, last_event, last_institution, last_type, last_region, "
        "last_ms) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET "
        "whole_net = codes.whole_net + excluded.whole_net, split_net = codes.split_net + excluded.split_net, "
        "sales = codes.sales + 1, last_event = excluded.last_event, last_institution = excluded.last_institution, "
        "last_type = excluded.last_type, last_region = excluded.last_region, last_ms = excluded.last_ms",
        (scan.code, 0 if units else 1, units, scan.id, scan.institution, scan.institution_type, scan.region,
         scan.event_ms),
    )
    if opens_pack:
        sold, inbound, takes_stock = _stock(tx, scan, sold=1)
        if sold > inbound + rules.stock_margin and takes_stock:
            alerts.raise_alert(
                tx, "sales_above_purchases", subject=f"{scan.institution}|{scan.pid}", now_ms=scan.event_ms,
                institution=scan.institution, terminal=scan.terminal, events=[scan.id],
                detail=f"product {scan.pid}: {sold} packs sold, {inbound} taken in (margin {rules.stock_margin})")
    if duplicate and row is not None:
        _duplicate_alerts(tx, scan, rules, last_institution=row[2], last_type=row[3], last_region=row[4],
                          last_ms=row[5])
    return duplicate


def _duplicate_alerts(tx: Tx, scan: StoredScan, rules: Rules, *, last_institution: str, last_type: str,
                      last_region: str, last_ms: int) -> None:
    evidence = [event_id for (event_id,) in tx.all(
        "SELECT id FROM events WHERE code = ? AND err = 0 AND op IN (?, ?) ORDER BY id DESC LIMIT ?",
        (scan.code, int(Operation.SALE), int(Operation.DISPENSE), _EVIDENCE_SALES))][::-1]

    def raise_(kind: str, detail: str) -> None:
        alerts.raise_alert(tx, kind, subject=scan.code, detail=detail, now_ms=scan.event_ms,
                           institution=scan.institution, terminal=scan.terminal, device=scan.device, events=evidence)

    sold_as = f"split {scan.split_qty} units" if scan.split_qty else "whole pack"
    apart_s = abs(scan.event_ms - last_ms) // 1000
    distant = bool(last_region and scan.region and last_region != scan.region and apart_s <= rules.distant_window_s)
    if last_institution == scan.institution:
        raise_("repeat_sale", f"code {scan.code} sold again at {scan.institution} ({sold_as}) beyond its "
               "split-pack allowance")
    elif last_type == "hospital" and scan.institution_type == "pharmacy":
        raise_("returned_drug", f"code {scan.code} dispensed at hospital {last_institution}, now sold at pharmacy "
               f"{scan.institution} (回流药 suspicion)" + (f", regions {last_region} and {scan.region} {apart_s} s "
                                                         "apart" if distant else ""))
    elif distant:
        raise_("distant_sale", f"code {scan.code} sold at {last_institution} in region {last_region} and at "
               f"{scan.institution} in {scan.region} {apart_s} s apart (cloned code suspicion)")
    else:
        raise_("cross_institution_sale", f"code {scan.code} sold at {last_institution}, now at {scan.institution}")


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
