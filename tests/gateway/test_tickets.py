"""POS tickets: reading them, storing them once, and matching scans to their lines in either order."""

import pytest
from scenario import Scenario, at, code

from gateway.protocol import Verdict
from gateway.rules import Rules
from gateway.tickets import TicketError, parse_ticket


@pytest.fixture
def world(tmp_path):
    world = Scenario(tmp_path, Rules(match_window_s=300, unscanned_after_s=600))
    world.counter("dev-a", "A1", "P-A")
    yield world
    world.close()


def test_parse_reads_iso_times_in_the_configured_zone_and_ms():
    body = {"number": "T1", "terminal": "A1", "time": "2026-11-22T09:00:00", "lines": [{"list_code": "XA01",
                                                                                        "quantity": 2}]}
    assert parse_ticket(body).time_ms == at(9)
    assert parse_ticket({**body, "time": "2026-11-22T01:00:00+00:00"}).time_ms == at(9)
    assert parse_ticket({**body, "time": at(9)}).lines[0].split is False


@pytest.mark.parametrize(("change", "message"), [
    ({"number": ""}, "number"), ({"number": "x" * 41}, "number"), ({"time": "yesterday"}, "time"),
    ({"lines": []}, "lines"), ({"lines": [{"list_code": "XA01", "quantity": 0}]}, "quantity"),
    ({"lines": [{"list_code": "XA01", "quantity": 1.5}]}, "quantity"),
    ({"lines": [{"list_code": "XA01", "quantity": 1, "split": "yes"}]}, "split"),
    ({"lines": [{"list_code": "XA01", "quantity": 1, "price": 3}]}, "line 1"), ({"extra": 1}, "unknown keys"),
    ({"time": 10**30}, "time must be from 2000"), ({"time": 1}, "time must be from 2000"),
    ({"time": -5}, "time"), ({"time": "9999-12-31T23:59:59"}, "time must be from 2000"),
    ({"time": "1999-12-31T23:59:59+00:00"}, "time"), ({"time": True}, "time"),
])
def test_parse_names_the_bad_field(change, message):
    body = {"number": "T1", "terminal": "A1", "time": at(9), "lines": [{"list_code": "XA01", "quantity": 1}]}
    with pytest.raises(TicketError, match=message) as caught:
        parse_ticket({**body, **change})
    assert caught.value.reason == "ticket_invalid"


def test_a_resent_ticket_is_stored_once_and_a_changed_one_is_refused(world):
    assert world.ticket("A1", "T1", at(9), ("XA01", 1)).result == "stored"
    assert world.ticket("A1", "T1", at(9), ("XA01", 1)).result == "repeated"
    refused = world.ticket("A1", "T1", at(9), ("XA01", 2))
    assert (refused.result, refused.reason) == ("refused", "ticket_conflict")
    assert world.rates()["A1"].counts["units_required"] == 1
    assert world.store.query("SELECT reason FROM quarantine") == [("ticket_conflict",)]


def test_a_terminal_without_a_device_needs_the_institution_and_shows_zero_coverage(world):
    refused = world.ticket("Z9", "T1", at(9), ("XA01", 1))
    assert refused.reason == "unknown_terminal"
    assert world.ticket("Z9", "T1", at(9), ("XA01", 3), institution="P-A").result == "stored"
    assert world.rates()["Z9"].coverage == 0.0


def test_scans_without_a_ticket_number_match_only_within_the_window(world):
    world.ticket("A1", "T1", at(9), ("XA01", 1))
    world.ticket("A1", "T2", at(10), ("XA01", 1))
    world.scan("dev-a", code(1), at(9, 4))  # 4 minutes after T1: matched
    world.scan("dev-a", code(2), at(9, 30))  # 30 minutes from both: left alone
    assert world.rates()["A1"].counts["units_covered"] == 1
    assert world.store.query("SELECT seq, ticket_id IS NOT NULL FROM events ORDER BY seq") == [(1, 1), (2, 0)]


def test_a_scan_before_its_ticket_is_claimed_when_the_ticket_arrives(world):
    world.scan("dev-a", code(1), at(9), ticket="T1")
    world.scan("dev-a", code(2), at(9, 0, 5))  # no ticket number, same product, inside the window
    world.scan("dev-a", code(3, "8654321"), at(9, 0, 9), ticket="T1")  # not on the ticket
    world.ticket("A1", "T1", at(9, 1), ("XA01", 2))
    row = world.rates()["A1"]
    assert (row.coverage, row.counts["matched_scans"], row.counts["mismatched_scans"]) == (1.0, 3, 1)
    assert [alert.type for alert in world.alerts()] == ["product_mismatch"]


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
