"""Duplicate sales and the fraud alerts they raise, each by a scenario built for it, and legitimate look-alikes."""

import pytest
from scenario import Scenario, at, code

from gateway.rules import Rules
from gateway.wire.protocol import Operation, Verdict


@pytest.fixture
def world(tmp_path):
    scenario = Scenario(tmp_path)
    scenario.counter("dev-a", "A1", "P-A", region="440300")
    scenario.counter("dev-a2", "A2", "P-A", region="440300")
    scenario.counter("dev-b", "B1", "P-B", region="440300")
    scenario.counter("dev-h", "H1", "H-1", kind="hospital", region="440300")
    scenario.counter("dev-far", "F1", "P-F", region="110100")
    yield scenario
    scenario.close()


def test_a_code_sold_twice_at_one_institution_is_a_duplicate_with_a_repeat_sale_alert(world):
    box = code(1)
    assert world.scan("dev-a", box, at(9)) == Verdict.OK
    assert world.scan("dev-a2", box, at(10)) == Verdict.DUPLICATE_SALE
    [alert] = world.alerts()
    assert (alert.type, alert.severity, alert.state, alert.institution, alert.subject) == (
        "repeat_sale", "high", "open", "P-A", box)
    assert alert.events == world.event_ids("dev-a") + world.event_ids("dev-a2")
    assert world.scan("dev-a", box, at(11)) == Verdict.DUPLICATE_SALE  # a third sale folds into the same alert
    [alert] = world.alerts()
    assert alert.count == 2 and len(alert.events) == 3


def test_split_pack_sales_up_to_the_pack_size_are_legitimate_and_one_unit_more_is_not(world):
    box = code(2)  # pack of 24
    for units in (10, 10, 4):
        assert world.scan("dev-a", box, at(9, units), split=units) == Verdict.OK
    assert world.alerts() == []
    assert world.scan("dev-a", box, at(10), split=1) == Verdict.DUPLICATE_SALE
    assert world.alert_types() == ["repeat_sale"]


def test_a_whole_pack_sale_after_split_sales_of_the_same_box_is_a_duplicate(world):
    box = code(3)
    assert world.scan("dev-a", box, at(9), split=2) == Verdict.OK
    assert world.scan("dev-a", box, at(10)) == Verdict.DUPLICATE_SALE


def test_a_sale_return_followed_by_a_resale_is_legitimate(world):
    box = code(4)
    assert world.scan("dev-a", box, at(9)) == Verdict.OK
    assert world.scan("dev-a", box, at(10), op=Operation.SALE_RETURN) == Verdict.OK
    assert world.scan("dev-a2", box, at(11)) == Verdict.OK
    split_box = code(5)
    world.scan("dev-a", split_box, at(12), split=20)
    world.scan("dev-a", split_box, at(12, 5), op=Operation.SALE_RETURN, split=20)
    assert world.scan("dev-a", split_box, at(12, 10), split=24) == Verdict.OK
    assert world.alerts() == []


def test_hospital_dispense_then_pharmacy_sale_is_a_returned_drug_suspicion(world):
    box = code(6)
    assert world.scan("dev-h", box, at(9), op=Operation.DISPENSE) == Verdict.OK
    assert world.scan("dev-b", box, at(15)) == Verdict.DUPLICATE_SALE
    [alert] = world.alerts()
    assert (alert.type, alert.severity, alert.institution) == ("returned_drug", "critical", "P-B")
    assert "H-1" in alert.detail and len(alert.events) == 2


def test_one_code_at_two_pharmacies_is_a_cross_institution_sale(world):
    box = code(7)
    world.scan("dev-a", box, at(9))
    world.scan("dev-b", box, at(9, 30))
    assert world.alert_types() == ["cross_institution_sale"]


def test_one_code_in_two_regions_within_the_window_is_a_distant_sale_and_nothing_else(tmp_path):
    world = Scenario(tmp_path, Rules(distant_window_s=3600))
    world.counter("dev-a", "A1", "P-A", region="440300")
    world.counter("dev-far", "F1", "P-F", region="110100")
    world.scan("dev-a", code(8), at(9))
    world.scan("dev-far", code(8), at(9, 30))
    assert world.alert_types() == ["distant_sale"]  # one fraud, one alert: not also cross_institution_sale
    world.scan("dev-a", code(9), at(9))
    world.scan("dev-far", code(9), at(11))  # two hours apart: outside the window, no cloned-code signal
    assert [(alert.type, alert.subject) for alert in world.alerts()] == [
        ("cross_institution_sale", code(9)), ("distant_sale", code(8))]
    world.close()


def test_sales_above_purchases_per_product_and_institution(world):
    for serial in (10, 11):
        assert world.scan("dev-a", code(serial), at(8), op=Operation.PURCHASE) == Verdict.OK
    world.scan("dev-a", code(10), at(9))
    world.scan("dev-a", code(11), at(9, 1))
    assert world.alerts() == []
    world.scan("dev-a", code(12), at(9, 2))  # a third pack never taken in
    [alert] = world.alerts()
    assert alert.type == "sales_above_purchases" and alert.subject == "P-A|8123456"
    assert "3 packs sold, 2 taken in" in alert.detail


def test_a_duplicate_sale_is_one_alert_and_moves_no_stock(world):
    world.scan("dev-a", code(30), at(8), op=Operation.PURCHASE)
    assert world.scan("dev-a", code(30), at(9)) == Verdict.OK
    assert world.scan("dev-a2", code(30), at(9, 5)) == Verdict.DUPLICATE_SALE  # the same box sold on paper again
    assert world.alert_types() == ["repeat_sale"]  # not also sales_above_purchases: one box left the shelf
    world.scan("dev-a", code(30), at(10), op=Operation.SALE_RETURN)  # one of the two sales returned: still sold
    world.scan("dev-a", code(31), at(8, 1), op=Operation.PURCHASE)
    world.scan("dev-a", code(31), at(10, 5))
    assert world.store.query("SELECT sold, inbound FROM stock WHERE institution = 'P-A'") == [(2, 2)]
    world.scan("dev-a", code(30), at(11), op=Operation.SALE_RETURN)  # nothing of it sold any more: back in stock
    assert world.store.query("SELECT sold, inbound FROM stock WHERE institution = 'P-A'") == [(1, 2)]
    assert world.alert_types() == ["repeat_sale"]


def test_a_purchase_return_takes_stock_back_and_a_split_pack_counts_once(world):
    world.scan("dev-a", code(20), at(8), op=Operation.PURCHASE)
    world.scan("dev-a", code(20), at(8, 1), op=Operation.PURCHASE)  # re-scan of the same box: one pack
    for units in (5, 5, 5):
        world.scan("dev-a", code(20), at(9, units), split=units)
    assert world.alerts() == []
    world.scan("dev-a", code(21), at(8), op=Operation.PURCHASE)
    world.scan("dev-a", code(21), at(8, 30), op=Operation.PURCHASE_RETURN)
    world.scan("dev-a", code(21), at(10))
    assert world.alert_types() == ["sales_above_purchases"]


def test_invalid_scans_are_stored_with_their_verdict_and_touch_no_ledger(world):
    assert world.scan("dev-a", "6901234567892", at(9)) == Verdict.INVALID_CODE  # a commodity EAN
    assert world.scan("dev-a", "81234560000000000001x", at(9)) == Verdict.INVALID_CODE
    assert world.alerts() == []
    assert world.store.query("SELECT count(*) FROM codes")[0][0] == 0


def test_a_product_missing_from_the_catalog_gets_the_unknown_product_verdict(world, tmp_path):
    assert world.scan("dev-a", code(30, prefix="8999999"), at(9)) == Verdict.UNKNOWN_PRODUCT
    empty = Scenario(tmp_path / "empty", with_catalog=False)  # no catalog imported yet: nothing is "unknown"
    empty.counter("dev-a", "A1", "P-A")
    assert empty.scan("dev-a", code(30, prefix="8999999"), at(9)) == Verdict.OK
    empty.close()
