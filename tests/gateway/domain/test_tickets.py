"""POS tickets: reading them and storing them once (matching scans to their lines: test_matching.py)."""

import pytest
from scenario import at, one_counter

from gateway.domain.tickets import TicketError, parse_ticket
from gateway.rules import Rules


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, "P-A", Rules(match_window_s=300, unscanned_after_s=600)) as world:
        yield world


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
