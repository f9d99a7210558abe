"""POS tickets stored once (reading them: tests/gateway/wire/test_ticket.py; matching scans to their lines:
test_matching.py)."""

import pytest
from scenario import at, one_counter

from gateway.rules import Rules


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, "P-A", Rules(match_window_s=300, unscanned_after_s=600)) as world:
        yield world


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
