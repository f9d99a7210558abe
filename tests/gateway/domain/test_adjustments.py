"""Inventory changes (3502): a scan in the device's ADJUST mode and a document posted to the API each go up
once as a 3502 row that passes the field rules; a repeated document is one row, a changed one under the same
number is refused; a platform refusal is a dead document with its reason; an operator may withdraw one."""

import json

import pytest
from scenario import at, code, one_counter
from uplink import Uplink, planning

from gateway.contract.platform_fields import check_row
from gateway.domain import adjustments, outbox
from gateway.wire.protocol import Operation

INSTITUTION = "H44030000001"
DOCUMENT = {"institution": INSTITUTION, "number": "BS-20261122-01", "list_code": "XA01", "chg_type": "105",
            "codes": [code(7), code(8)], "price": "12.5", "operator": "库管员", "memo": "破损", "time": at(11)}


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, INSTITUTION) as world:
        yield world


def _post(world, document):
    now_ms = at(11, 1)
    with world.store.transaction() as tx:
        return adjustments.record(tx, adjustments.parse_adjustment(document, timezone="Asia/Shanghai"),
                                  now_ms=now_ms)


def _held(sim):
    """bchno -> the 3502 rows the platform holds."""
    rows = [json.loads(text) for (text,) in sim._db.execute("SELECT row FROM accepted WHERE infno = '3502' "
                                                            "AND withdrawn = 0")]
    return {row["fixmedins_bchno"]: row for row in rows}


def test_a_scan_in_adjust_mode_goes_up_once_as_an_inventory_change(world, sim):
    world.scan("dev-a", code(1), at(10), op=Operation.ADJUST, ticket="BS-1")
    world.scan("dev-a", code(2), at(10, 1), op=Operation.ADJUST, split=5)
    uplink = Uplink(sim, planning(INSTITUTION, 0))
    uplink.tick(world.store, at(10, 2))
    uplink.tick(world.store, at(10, 3))
    held = _held(sim)
    assert set(held) == {"TCE1", "TCE2"} and sim.counts()["accepted_rows"] == 2
    whole, split = held["TCE1"], held["TCE2"]
    assert check_row("3502", whole) == [] and whole["drugtracinfo"] == [{"drug_trac_codg": code(1)}]
    assert (whole["cnt"], whole["trdn_flag"], whole["inv_chg_type"], whole["pric"]) == ("1", "0", "104", "0")
    assert whole["inv_chg_time"] == "2026-11-22 10:00:00" and whole["memo"] == "单据 BS-1"
    assert (split["cnt"], split["trdn_flag"]) == ("5", "1")


def test_a_document_from_the_api_goes_up_once_and_a_changed_one_is_refused(world, sim):
    first, new = _post(world, DOCUMENT)
    assert new and _post(world, DOCUMENT) == (first, False)  # the POS sent it again: the same document
    with pytest.raises(adjustments.AdjustmentError, match="other content") as changed:
        _post(world, {**DOCUMENT, "codes": [code(7)]})
    assert changed.value.kind == "conflict"
    uplink = Uplink(sim, planning(INSTITUTION, 0))
    uplink.tick(world.store, at(11, 2))
    uplink.tick(world.store, at(11, 3))
    [row] = _held(sim).values()
    assert check_row("3502", row) == [] and row["fixmedins_bchno"] == f"TCA{first}"
    assert (row["cnt"], row["pric"], row["inv_chg_type"], row["inv_chg_opter_name"], row["memo"]) == (
        "2", "12.5", "105", "库管员", "破损")
    assert row["fixmedins_hilist_name"].startswith("Amoxicillin") and len(row["drugtracinfo"]) == 2
    with world.store.reading() as tx:
        assert adjustments.state_counts(tx)["done"] == 1
    # withdrawn by an operator, for good
    with world.store.transaction() as tx:
        asked = outbox.ask_withdrawal(tx, f"TCA{first}", reason="entered twice", operator="店长", now_ms=at(12))
    assert asked.infno == "3502"
    uplink.tick(world.store, at(12, 1))
    with world.store.reading() as tx:
        assert adjustments.state_counts(tx)["withdrawn"] == 1
    assert _held(sim) == {} and sim.counts()["withdrawn_rows"] == 1


def test_a_document_the_platform_refuses_is_dead_with_the_reason(world, sim):
    sim.set_faults({"reject_list_code": "XA01"})
    _post(world, DOCUMENT)
    Uplink(sim, planning(INSTITUTION, 0)).tick(world.store, at(11, 2))
    [(state, error)] = world.store.query("SELECT state, error FROM adjustments")
    assert state == "dead" and "XA01不存在" in error


def test_numbers_have_one_spelling_whatever_the_document_wrote():
    """"1e2" went to the platform as "1E+2" (a new user's attack); equal values are equal documents."""
    spelt = [adjustments.parse_adjustment({**DOCUMENT, "count": count, "price": price}, timezone="Asia/Shanghai")
             for count, price in (("1e2", "1.2500"), ("100", "1.25"), (100, "125e-2"))]
    assert {(document.count, document.price) for document in spelt} == {("100", "1.25")}


@pytest.mark.parametrize(("change", "message"), [
    ({"codes": []}, "codes must list 1-100"), ({"codes": [code(1), code(1)]}, "must not repeat"),
    ({"count": "1.00001"}, "at most 4 decimals"), ({"count": -1}, "non-negative"), ({"count": 0}, "above 0"),
    ({"price": "NaN"}, "price"), ({"number": ""}, "number must be text"), ({"chg_type": "1234567"}, "chg_type"),
    ({"split": "yes"}, "split"), ({"time": "yesterday"}, "ISO 8601"), ({"time": None}, "ISO 8601"),
    ({"institution": 5}, "institution")])
def test_bad_documents_are_refused_naming_the_field(change, message):
    with pytest.raises(adjustments.AdjustmentError, match=message):
        adjustments.parse_adjustment({**DOCUMENT, **change}, timezone="Asia/Shanghai")
