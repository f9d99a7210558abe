"""Sale scans against ticket lines, in either order of arrival: which line each scan fills or stands for, and
one alert per fraud (an unscanned_sale only for units no code was scanned for, naming its line)."""

import pytest
from scenario import at, code, one_counter
from stores import on_postgres

from gateway.domain import matching
from gateway.rules import Rules
from gateway.wire.protocol import Verdict

OTHER = "8111111"
"""Prefix of XD04, a product none of these tickets bills."""


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, "P-A", Rules(match_window_s=300, unscanned_after_s=600)) as world:
        yield world


def _lines(world, number):
    """(line_no, scans, stood) of a ticket's lines."""
    return world.store.query("SELECT l.line_no, l.scans, l.stood FROM ticket_lines l JOIN tickets t "
                             "ON t.id = l.ticket_id WHERE t.number = ? ORDER BY l.line_no", (number,))


def _line_id(world, number, line_no):
    return world.store.query("SELECT l.id FROM ticket_lines l JOIN tickets t ON t.id = l.ticket_id "
                             "WHERE t.number = ? AND l.line_no = ?", (number, line_no))[0][0]


def test_scans_without_a_ticket_number_match_a_ticket_settled_after_them_within_the_window(world):
    world.ticket("A1", "T1", at(9), ("XA01", 1))
    world.ticket("A1", "T2", at(10), ("XA01", 1))
    world.ticket("A1", "T3", at(11), ("XA01", 1))
    world.scan("dev-a", code(1), at(8, 56))  # 4 minutes before T1: its box
    world.scan("dev-a", code(2), at(9, 30))  # 30 minutes from T1 and T2: left alone
    world.scan("dev-a", code(3), at(10, 0, 30))  # after T2 was paid, and T3 is an hour away: the next customer's
    world.scan("dev-a", code(4), at(11, 0, 5))  # 5 s after T3: clock skew between the POS and the scanner
    assert world.rates()["A1"].counts["units_covered"] == 2
    assert world.store.query("SELECT seq, ticket_id IS NOT NULL FROM events ORDER BY seq") == [
        (1, 1), (2, 0), (3, 0), (4, 1)]


def test_a_scan_before_its_ticket_is_claimed_when_the_ticket_arrives(world):
    world.scan("dev-a", code(1), at(9), ticket="T1")
    world.scan("dev-a", code(2), at(9, 0, 5))  # no ticket number, same product, inside the window
    world.scan("dev-a", code(3, "8654321"), at(9, 0, 9), ticket="T1")  # not on the ticket
    world.ticket("A1", "T1", at(9, 1), ("XA01", 2))
    row = world.rates()["A1"]
    assert (row.coverage, row.counts["matched_scans"], row.counts["mismatched_scans"]) == (1.0, 3, 1)
    [alert] = world.alerts()
    [(ticket_id,)] = world.store.query("SELECT id FROM tickets")
    assert (alert.type, alert.subject) == ("product_mismatch", f"ticket:{ticket_id}")
    assert "every billed line has its codes" in alert.detail  # an extra box: no line was left without a code


def test_a_late_scan_resolves_the_unscanned_alert(world):
    world.ticket("A1", "T1", at(9), ("XA01", 1))
    world.sweep(at(9, 5))
    assert world.alerts() == []  # not due yet
    world.sweep(at(9, 11))
    [alert] = world.alerts("unscanned_sale")
    assert alert.state == "open"
    assert world.scan("dev-a", code(1), at(9, 20), ticket="T1") == Verdict.OK  # the device was offline
    [alert] = world.alerts("unscanned_sale")
    assert (alert.state, alert.note) == ("resolved", "scanned late")


def test_several_lines_of_one_product_fill_in_order_and_the_short_one_is_named(world):
    world.ticket("A1", "T1", at(9), ("XA01", 2), ("XB02", 1), ("XA01", 1))
    world.scan("dev-a", code(1), at(8, 59, 10))  # stored after the ticket, scanned before the customer paid
    world.scan("dev-a", code(2), at(8, 59, 20))
    world.scan("dev-a", code(3, "8654321"), at(8, 59, 30))
    assert _lines(world, "T1") == [(1, 2, 0), (2, 1, 0), (3, 0, 0)]
    world.sweep(at(9, 11))
    [alert] = world.alerts()
    assert (alert.type, alert.subject) == ("unscanned_sale", f"line:{_line_id(world, 'T1', 3)}")
    assert alert.detail == "ticket T1 line 3 (XA01 x1): 0 of 1 codes scanned; 1 without any code (无码销售)"


def test_a_split_scan_fills_the_split_line_of_its_product_first(world):
    world.ticket("A1", "T1", at(9), ("XA01", 1), ("XA01", 6, True))
    world.scan("dev-a", code(1), at(8, 59), split=6)
    world.scan("dev-a", code(2), at(8, 59, 30))
    assert _lines(world, "T1") == [(1, 1, 0), (2, 1, 0)]


def test_scans_before_and_after_the_ticket_fill_one_line_and_nothing_is_left(world):
    world.scan("dev-a", code(1), at(8, 58))
    world.scan("dev-a", code(2), at(8, 59), ticket="T1")
    world.ticket("A1", "T1", at(9), ("XA01", 3))
    assert _lines(world, "T1") == [(1, 2, 0)]
    world.scan("dev-a", code(3), at(8, 59, 30), ticket="T1")  # the counter was offline: it comes late
    assert _lines(world, "T1") == [(1, 3, 0)]
    world.sweep(at(9, 11))
    assert world.alerts() == []


def test_a_partly_scanned_line_raises_one_alert_for_the_units_without_code(world):
    world.ticket("A1", "T1", at(9), ("XA01", 3))
    world.scan("dev-a", code(1), at(9, 1), ticket="T1")
    world.scan("dev-a", code(2), at(9, 2), ticket="T1")
    world.sweep(at(9, 11))
    [alert] = world.alerts()
    assert alert.type == "unscanned_sale" and "2 of 3 codes scanned; 1 without any code" in alert.detail
    assert len(alert.events) == 2 and len(alert.tickets) == 1


@pytest.mark.parametrize("numbered", [True, False], ids=["ticket-number", "loose"])
@pytest.mark.parametrize("order", ["before", "after"])
def test_a_duplicate_sale_stands_for_its_line_one_alert_not_two(world, numbered, order):
    box = code(1)
    world.scan("dev-a", box, at(8))  # sold earlier the same morning, no ticket near
    if order == "after":  # the ticket is stored first
        world.ticket("A1", "T1", at(9), ("XA01", 1))
    assert world.scan("dev-a", box, at(8, 59, 30), ticket="T1" if numbered else "") == Verdict.DUPLICATE_SALE
    if order == "before":
        world.ticket("A1", "T1", at(9), ("XA01", 1))
    assert _lines(world, "T1") == [(1, 0, 1)]
    world.sweep(at(9, 30))
    [alert] = world.alerts()  # no unscanned_sale: a code was scanned for the unit
    ticket_id = world.store.query("SELECT id FROM tickets")[0][0]
    assert alert.type == "repeat_sale" and alert.tickets == [ticket_id] and "ticket T1 line 1 (XA01)" in alert.detail
    assert world.rates()["A1"].coverage == 0.0  # a duplicate covers no unit


@pytest.mark.parametrize("order", ["before", "after"])
def test_a_mismatch_names_the_billed_line_left_without_code_and_is_the_only_alert(world, order):
    if order == "after":
        world.ticket("A1", "T1", at(9), ("XA01", 1), ("XB02", 1))
    world.scan("dev-a", code(1), at(9, 1), ticket="T1")
    swapped = world.scan("dev-a", code(2, OTHER), at(9, 2), ticket="T1")
    if order == "before":
        world.ticket("A1", "T1", at(9, 3), ("XA01", 1), ("XB02", 1))
    else:
        assert swapped == Verdict.PRODUCT_MISMATCH
    world.sweep(at(9, 30))
    [alert] = world.alerts()
    assert (alert.type, alert.subject) == ("product_mismatch", f"line:{_line_id(world, 'T1', 2)}")
    assert alert.detail.startswith("ticket T1 line 2 (XB02 x1) left without its code: scanned XD04")


def test_a_box_of_another_product_scanned_without_the_ticket_number_is_a_mismatch_when_the_line_is_due(world):
    world.scan("dev-a", code(1), at(9, 0, 10))
    world.scan("dev-a", code(2, OTHER), at(9, 0, 20))  # no ticket claims it: T1 does not bill XD04
    world.ticket("A1", "T1", at(9, 1), ("XA01", 1), ("XB02", 1))
    world.sweep(at(9, 30))
    [alert] = world.alerts()
    assert (alert.type, alert.subject) == ("product_mismatch", f"line:{_line_id(world, 'T1', 2)}")
    assert world.store.query("SELECT matching, stands_for FROM events WHERE seq = 2") == [
        (int(matching.Matching.MISMATCH), _line_id(world, "T1", 2))]
    assert world.rates()["A1"].counts["mismatched_scans"] == 1


def test_a_wrong_box_then_the_right_one_leaves_no_unit_without_code(world):
    world.ticket("A1", "T1", at(9), ("XA01", 1), ("XB02", 1))
    assert world.scan("dev-a", code(2, OTHER), at(9, 1), ticket="T1") == Verdict.PRODUCT_MISMATCH
    world.scan("dev-a", code(1), at(9, 2), ticket="T1")
    world.sweep(at(9, 30))  # the wrong box was scanned for the unit of XB02: a code, so no 无码 alert
    assert world.alert_types() == ["product_mismatch"]


def test_a_claim_takes_the_nearest_loose_scans_and_only_as_many_as_the_lines_need(world):
    for second in range(0, 50, 2):  # 25 loose boxes of the product over the window, and others
        world.scan("dev-a", code(100 + second), at(9, 0, second))
        world.scan("dev-a", code(200 + second, "8654321"), at(9, 0, second + 1))
    world.ticket("A1", "T1", at(9, 0, 21), ("XA01", 2))
    assert world.store.query("SELECT event_ms FROM events WHERE line_id IS NOT NULL ORDER BY event_ms") == [
        (at(9, 0, 20),), (at(9, 0, 22),)]
    assert world.store.query("SELECT count(*) FROM events WHERE ticket_id IS NOT NULL") == [(2,)]


def test_the_loose_scans_of_a_product_are_read_through_their_index(world):
    if on_postgres():
        pytest.skip("SQLite's query plan; PostgreSQL picks plans by table statistics")
    world.scan("dev-a", code(1), at(9))
    plan = world.store.query(
        "EXPLAIN QUERY PLAN SELECT id FROM events WHERE terminal = ? AND list_code = ? AND verdict = ? AND "
        "ticket_id IS NULL AND err = 0 AND op IN (1, 6) AND ticket = '' AND event_ms BETWEEN ? AND ? "
        "ORDER BY event_ms DESC, id LIMIT ?", ("A1", "XA01", 0, 0, at(9), 2))
    assert "USING INDEX events_loose" in " ".join(str(row[-1]) for row in plan)


def test_lacking_moves_what_stands_beyond_a_line_to_another_short_line():
    lines = [matching.Line(1, 1, "XA01", 1, 1, 1, True, False), matching.Line(2, 2, "XB02", 2, 0, 0, True, False),
             matching.Line(3, 3, "XD04", 1, 0, 0, False, False)]
    assert matching.lacking(lines) == {1: 0, 2: 1, 3: 1}
