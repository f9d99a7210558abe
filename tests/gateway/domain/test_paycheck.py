"""无码不付: the answer a POS gets before settling, per line, from what is stored; it writes nothing."""

import pytest
from scenario import at, code, one_counter

from gateway.domain import paycheck
from gateway.rules import Rules
from gateway.wire.ticket import parse_ticket


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, "P-A", Rules(match_window_s=300)) as world:
        yield world


def _ask(world, number, when, *lines):
    ticket = parse_ticket({"number": number, "terminal": "A1", "time": when, "lines": [
        {"list_code": line[0], "quantity": line[1], "split": bool(line[2:] and line[2])} for line in lines]})
    with world.store.reading() as tx:
        return paycheck.check(tx, ticket, world.rules)


def test_a_fully_scanned_ticket_may_be_paid(world):
    world.scan("dev-a", code(1), at(9, 0, 10), ticket="T1")
    world.scan("dev-a", code(2), at(9, 0, 20))  # loose: this checkout's box
    world.scan("dev-a", code(3, "8654321"), at(9, 0, 30), ticket="T1", split=4)
    answer = _ask(world, "T1", at(9, 1), ("XA01", 2), ("XB02", 4, True), ("XD04", 1))
    assert answer["pay"] is True and answer["stored"] is False and answer["extra"] == []
    assert [(line["scanned"], line["missing"]) for line in answer["lines"]] == [
        ([code(1), code(2)], 0), ([code(3, "8654321")], 0), ([], 0)]  # XD04 needs no code
    assert answer["lines"][2]["required"] is False


def test_each_line_says_what_it_lacks_and_what_was_scanned_wrongly(world):
    world.scan("dev-a", code(1), at(8))  # sold this morning
    world.scan("dev-a", code(1), at(9, 0, 5), ticket="T2")  # the same box again: a duplicate
    world.scan("dev-a", code(2), at(9, 0, 10), ticket="T2")
    world.scan("dev-a", code(3, "8111111"), at(9, 0, 20), ticket="T2")  # XD04: a product the ticket does not bill
    answer = _ask(world, "T2", at(9, 1), ("XA01", 3), ("XB02", 1), ("XA01", 1))
    assert answer["pay"] is False
    first, second, third = answer["lines"]  # the wrong box stands for the first line with a unit left
    assert (first["scanned"], first["duplicates"], first["mismatches"]) == ([code(2)], [code(1)], [code(3, "8111111")])
    assert [line["missing"] for line in answer["lines"]] == [0, 1, 1]
    assert second["scanned"] == third["scanned"] == []


def test_a_box_scanned_for_the_previous_customer_is_not_counted(world):
    world.scan("dev-a", code(1), at(8, 59))
    world.ticket("A1", "T0", at(9), ("XA01", 1))
    world.scan("dev-a", code(2), at(9, 2))
    answer = _ask(world, "T3", at(9, 3), ("XA01", 2))
    assert (answer["lines"][0]["scanned"], answer["lines"][0]["missing"]) == ([code(2)], 1)


def test_a_stored_ticket_is_answered_from_its_matching_and_nothing_is_written(world):
    world.scan("dev-a", code(1), at(9, 0, 10), ticket="T4")
    world.ticket("A1", "T4", at(9, 1), ("XA01", 2))
    before = world.store.query("SELECT count(*), sum(scans) FROM ticket_lines")
    answer = _ask(world, "T4", at(9, 1), ("XA01", 2))
    assert answer["stored"] is True and answer["lines"][0]["scanned"] == [code(1)]
    assert answer["lines"][0]["missing"] == 1
    assert world.store.query("SELECT count(*), sum(scans) FROM ticket_lines") == before
