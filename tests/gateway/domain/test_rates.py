"""Rates on a scenario whose answers are worked out by hand."""

import pytest
from scenario import DAY, Scenario, at, code

from gateway.domain import rates
from gateway.wire.protocol import Verdict


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = Scenario(tmp_path_factory.mktemp("rates"))
    world.counter("dev-a", "A1", "P-A")
    world.counter("dev-a2", "A2", "P-A")
    world.counter("dev-b", "B1", "P-B")
    # A1: ticket T1 (2 whole packs of XA01 and a split line of XB02) fully scanned; T2 (one XA01 pack and one
    # code-exempt XD04) not scanned at all; one invalid scan.
    world.ticket("A1", "T1", at(9), ("XA01", 2), ("XB02", 5, True))
    assert world.scan("dev-a", code(1), at(9, 0, 10), ticket="T1") == Verdict.OK
    assert world.scan("dev-a", code(2), at(9, 0, 20), ticket="T1") == Verdict.OK
    assert world.scan("dev-a", code(100, "8654321"), at(9, 0, 30), ticket="T1", split=5) == Verdict.OK
    world.ticket("A1", "T2", at(10), ("XA01", 1), ("XD04", 1))
    assert world.scan("dev-a", "6901234567892", at(10, 30)) == Verdict.INVALID_CODE
    # A2: a scan without ticket number matched by time (scanned before the customer paid, stored after the
    # ticket); a scan of a product not on its ticket (串换); a scan that arrives before its ticket.
    world.ticket("A2", "U1", at(11), ("XA01", 1))
    assert world.scan("dev-a2", code(3), at(11)) == Verdict.OK
    assert world.scan("dev-a2", code(101, "8654321"), at(11, 3), ticket="U1") == Verdict.PRODUCT_MISMATCH
    assert world.scan("dev-a2", code(4), at(12), ticket="U2") == Verdict.OK
    world.ticket("A2", "U2", at(12, 1), ("XA01", 1))
    # B1: the box sold at A1 sold again
    assert world.scan("dev-b", code(1), at(13)) == Verdict.DUPLICATE_SALE
    world.sweep(at(23))
    yield world
    world.close()


def test_per_terminal_rates(world):
    found = world.rates()
    assert set(found) == {"A1", "A2", "B1"}
    a1, a2, b1 = found["A1"], found["A2"], found["B1"]
    assert (a1.counts["units_required"], a1.counts["units_covered"], a1.coverage) == (4, 3, 0.75)
    assert (a1.counts["scans"], a1.valid_scan_rate) == (4, 0.75)
    assert (a1.duplicate_rate, a1.consistency_error_rate) == (0.0, 0.0)
    assert (a2.coverage, a2.consistency_error_rate, a2.counts["matched_scans"]) == (1.0, round(1 / 3, 6), 3)
    assert (a2.swap_rate, b1.swap_rate) == (round(1 / 3, 6), None)
    assert (b1.coverage, b1.duplicate_rate, b1.consistency_error_rate) == (None, 1.0, None)
    assert a1.upload_rate == 0.0 and a1.counts["stored"] == 3  # valid events; nothing forwarded yet
    assert a1.missing_seqs == 0


def test_per_institution_rates_add_up_their_terminals(world):
    found = world.rates("institution")
    assert set(found) == {"P-A", "P-B"}
    assert (found["P-A"].coverage, found["P-A"].counts["scans"]) == (round(5 / 6, 6), 7)
    assert found["P-A"].valid_scan_rate == round(6 / 7, 6)


def test_filters_and_periods(world):
    assert set(world.rates(institution="P-B")) == {"B1"}
    with world.store.reading() as tx:
        next_day = rates.query(tx, rates.day_period(DAY.date().replace(day=23), "Asia/Shanghai"))
        window = rates.query(tx, rates.window_period(at(12, 30), 2), scope="institution")  # hours 11 and 12
    assert next_day == []
    assert {row.institution: row.counts["scans"] for row in window} == {"P-A": 3}


def test_unscanned_ticket_line_raised_once_and_exempt_products_never(world):
    [alert] = world.alerts("unscanned_sale")
    assert alert.terminal == "A1" and "T2" in alert.detail and "XA01" in alert.detail and len(alert.tickets) == 1
    world.sweep(at(23, 30))
    assert len(world.alerts("unscanned_sale")) == 1


def test_the_mismatch_alert_names_the_ticket_and_the_scan(world):
    [alert] = world.alerts("product_mismatch")
    assert alert.terminal == "A2" and "XB02" in alert.detail and len(alert.events) == 1 == len(alert.tickets)


def test_rates_come_from_the_counters_not_from_rescanning_events(world, tmp_path):
    before = {name: row.as_dict() for name, row in world.rates().items()}
    with world.store.transaction() as tx:
        tx.execute("CREATE TEMP TABLE saved AS SELECT * FROM events")
        tx.execute("DELETE FROM events")
    try:
        assert {name: row.as_dict() for name, row in world.rates().items()} == before
    finally:
        with world.store.transaction() as tx:
            tx.execute("INSERT INTO events SELECT * FROM saved")


def test_the_swap_rate_counts_settlements_with_another_products_code_or_a_sold_one(tmp_path):
    """串换率 = swapped_scans / matched_scans. At C1, of four scans settled on tickets: one of a product the ticket
    does not bill, one of a box already sold (its ticket arrives after it), two good; a duplicate on no ticket
    counts in the duplicate rate only."""
    world = Scenario(tmp_path)
    world.counter("dev-c", "C1", "P-C")
    world.ticket("C1", "V1", at(9), ("XA01", 2))
    assert world.scan("dev-c", code(1), at(9, 0, 10), ticket="V1") == Verdict.OK
    assert world.scan("dev-c", code(101, "8654321"), at(9, 0, 20), ticket="V1") == Verdict.PRODUCT_MISMATCH
    assert world.scan("dev-c", code(1), at(10), ticket="V2") == Verdict.DUPLICATE_SALE
    world.ticket("C1", "V2", at(10, 0, 30), ("XA01", 1))
    assert world.scan("dev-c", code(2), at(11), ticket="V3") == Verdict.OK
    world.ticket("C1", "V3", at(11, 0, 5), ("XA01", 1))
    assert world.scan("dev-c", code(1), at(15)) == Verdict.DUPLICATE_SALE  # no ticket near: not a settlement
    row = world.rates()["C1"]
    world.close()
    assert (row.counts["matched_scans"], row.counts["swapped_scans"], row.swap_rate) == (4, 2, 0.5)
    assert (row.consistency_error_rate, row.duplicate_rate) == (0.25, 0.4)
    assert row.as_dict()["swap_rate"] == 0.5


def test_the_swap_rate_counts_a_claimed_loose_duplicate_once_and_an_unknown_product_not_at_all(tmp_path):
    """Loose scans a ticket claims when it arrives count when tied, once, and the line check does not count them
    again; a scan of a product the catalog lacks is outside both rates (their denominator is known products)."""
    world = Scenario(tmp_path)
    world.counter("dev-d", "D1", "P-D")
    world.ticket("D1", "W0", at(9), ("XA01", 1))
    assert world.scan("dev-d", code(1), at(9, 0, 10), ticket="W0") == Verdict.OK
    assert world.scan("dev-d", code(1), at(10)) == Verdict.DUPLICATE_SALE  # loose: its checkout settles as W1
    assert world.scan("dev-d", code(2), at(10, 0, 5)) == Verdict.OK
    world.ticket("D1", "W1", at(10, 0, 30), ("XA01", 2))
    assert world.scan("dev-d", code(3, "8999999"), at(10, 0, 40), ticket="W1") == Verdict.UNKNOWN_PRODUCT
    counted = world.rates()["D1"].counts
    world.sweep(at(12))  # the lines are checked: nothing tied again
    row = world.rates()["D1"]
    world.close()
    assert (counted["matched_scans"], counted["swapped_scans"], counted["mismatched_scans"]) == (3, 1, 0)
    assert row.counts == counted and row.swap_rate == round(1 / 3, 6)
