"""The outbox and the mapping: rows per operation checked against the reference's field rules, ticket lines as
one row, dead letters with the reason, requeue, and settlement against the platform simulator in-process."""

import json
import time

import pytest
from scenario import at, code, one_counter

from gateway.contract.platform_fields import check_envelope, check_row
from gateway.domain import outbox
from gateway.metrics import Metrics
from gateway.outbound.forwarder import Forwarder
from gateway.settings import ForwardSettings
from gateway.wire.protocol import Operation
from harness.gateway_process import FORWARD_DEFAULTS
from tools.platform_sim import Faults, PlatformSim

INSTITUTION = "H44030000001"
SALE_ROW_MANDATORY = {  # docs/platform.md, "3505 sale row mandatory fields (H)"
    "med_list_codg", "fixmedins_hilist_id", "fixmedins_hilist_name", "fixmedins_bchno", "prsc_dr_name", "phar_name",
    "phar_prac_cert_no", "mdtrt_sn", "manu_lotnum", "manu_date", "rx_flag", "trdn_flag", "rtal_docno",
    "sel_retn_cnt", "sel_retn_time", "sel_retn_opter_name"}
ENVELOPE_KEYS = {  # docs/platform.md, "Envelope (H)"
    "infno", "msgid", "mdtrtarea_admvs", "insuplc_admdvs", "recer_sys_code", "dev_no", "dev_safe_info", "cainfo",
    "signtype", "infver", "opter_type", "opter", "opter_name", "inf_time", "fixmedins_code", "fixmedins_name",
    "sign_no", "input"}


def planning(batch_size=20, values=None):
    return outbox.Planning(batch_size=batch_size, sale_hold_ms=0, timezone="Asia/Shanghai",
                           values={INSTITUTION: {"fixmedins_name": "第一药房"}},
                           defaults=FORWARD_DEFAULTS if values is None else values)


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, INSTITUTION) as world:
        yield world


def _plan(world, **options):
    with world.store.transaction() as tx:
        made = outbox.plan(tx, planning(**options), now_ms=at(23), limit=1000)
    requests = [json.loads(body) for (body,) in world.store.query("SELECT body FROM requests ORDER BY id")]
    return made, requests


def test_every_operation_maps_to_its_interface_and_passes_the_field_rules(world):
    world.scan("dev-a", code(1), at(9), op=Operation.PURCHASE)
    world.scan("dev-a", code(2), at(9, 1), op=Operation.STOCKTAKE)
    world.scan("dev-a", code(3), at(9, 2), op=Operation.PURCHASE)
    world.scan("dev-a", code(3), at(9, 3), op=Operation.PURCHASE_RETURN)
    world.scan("dev-a", "]d2010690123456789217261200102AB\x1d11250101\x1d21XYZ123", at(9, 4))
    world.scan("dev-a", code(4), at(9, 5), split=3)
    world.scan("dev-a", "6901234567892", at(9, 6))  # invalid: stored, never uploaded
    made, requests = _plan(world, batch_size=1)
    assert made == 6 and len(requests) == 6
    by_interface = {request["infno"]: request for request in requests}
    assert set(by_interface) == {"3501", "3503", "3504", "3505"}
    for request in requests:
        assert set(request) == ENVELOPE_KEYS
        assert check_envelope({key: value for key, value in request.items() if key != "input"}) == []
        assert request["fixmedins_code"] == INSTITUTION and request["msgid"].startswith(INSTITUTION)
        [(node, row)] = request["input"].items()
        assert check_row(request["infno"], row) == [], (request["infno"], check_row(request["infno"], row))
    sales = [request["input"]["selinfo"] for request in requests if request["infno"] == "3505"]
    gs1 = next(row for row in sales if row["med_list_codg"] == "XC03")
    assert SALE_ROW_MANDATORY <= set(gs1)
    assert (gs1["manu_lotnum"], gs1["manu_date"], gs1["expy_end"]) == ("2AB", "2025-01-01", "2026-12-31")
    assert gs1["drugtracinfo"] == [{"drug_trac_codg": "010690123456789217261200102AB\x1d1125010121XYZ123"}]
    split = next(row for row in sales if row["med_list_codg"] == "XA01")
    assert (split["trdn_flag"], split["sel_retn_cnt"], split["rtal_docno"]) == ("1", "3", split["rtal_docno"])
    assert world.store.query("SELECT count(*) FROM outbox")[0][0] == 6


def test_a_ticket_line_goes_up_as_one_row_with_all_its_codes_and_the_pos_fields(world):
    world.ticket("A1", "T1", at(9), ("XA01", 2), institution="")
    with world.store.transaction() as tx:
        tx.execute("UPDATE tickets SET platform = ? WHERE number = 'T1'",
                   (json.dumps({"mdtrt_sn": "MD123", "setl_id": "S9", "psn_no": "P1"}),))
    world.scan("dev-a", code(1), at(9, 1), ticket="T1")
    world.scan("dev-a", code(2), at(9, 2), ticket="T1")
    made, [request] = _plan(world)
    assert made == 1 and request["infno"] == "3505A"
    [row] = request["input"]["selinfoDetail"]
    assert row["drugtracinfo"] == [{"drug_trac_codg": code(1)}, {"drug_trac_codg": code(2)}]
    assert (row["sel_retn_cnt"], row["trdn_flag"], row["rtal_docno"], row["mdtrt_sn"], row["setl_id"]) == (
        "2", "0", "T1", "MD123", "S9")
    assert check_row("3505", row) == []


def test_missing_values_become_dead_letters_with_a_clear_reason_and_can_be_requeued(world):
    world.scan("dev-a", code(1), at(9))
    world.scan("dev-a", code(5, "8999999"), at(9, 1))  # not in the catalog
    made, _ = _plan(world, values={})
    assert made == 0
    with world.store.reading() as tx:
        letters = {letter["code"]: letter["error"] for letter in outbox.dead_letters(tx)}
    assert "phar_name is mandatory and missing" in letters[code(1)]
    assert "not in the catalog" in letters[code(5, "8999999")]
    with world.store.transaction() as tx:
        assert outbox.requeue(tx, None, now_ms=at(10)) == 2
    made, [request] = _plan(world)
    assert made == 1 and len(request["input"]["selinfoDetail"]) == 1  # the known product; the other is dead again


def test_a_sale_return_names_the_uploaded_sale_and_waits_for_it(world, tmp_path):
    world.scan("dev-a", code(1), at(9))
    world.scan("dev-a", code(1), at(9, 5), op=Operation.SALE_RETURN)
    with world.store.transaction() as tx:
        outbox.plan(tx, planning(), now_ms=at(23), limit=1)  # only the sale is planned
        assert outbox.plan(tx, planning(), now_ms=at(23), limit=1000) == 0  # the return waits for the sale
        request_id = tx.one("SELECT id FROM requests")[0]
        assert outbox.settle_done(tx, request_id, {}, now_ms=at(23)) == (1, 0)
        assert outbox.plan(tx, planning(), now_ms=at(23), limit=1000) == 1
        body = json.loads(tx.one("SELECT body FROM requests WHERE infno = '3506'")[0])
    [row] = body["input"]["selinfoDetail"]
    assert row["medins_prod_sel_no"] == "TCE1" and check_row("3506", row) == []
    assert world.rates()["A1"].counts["uploaded"] == 1


@pytest.fixture
def platform(tmp_path):
    with PlatformSim(tmp_path / "platform.sqlite3", Faults(reject_list_code="XB02"), seed=1) as sim:
        yield sim


def _forwarder(world, url, **settings):
    options = dict(base_url=url, batch_size=5, concurrency=2, rate_per_s=0, sale_hold_s=0, backoff_base_ms=50,
                   backoff_cap_ms=500, timeout_ms=1000, breaker_failures=3, breaker_cooldown_ms=300,
                   defaults=FORWARD_DEFAULTS, institutions={INSTITUTION: {"fixmedins_name": "第一药房"}})
    options.update(settings)
    return Forwarder(ForwardSettings(**options), world.store, timezone="Asia/Shanghai", instance="test",
                     metrics=Metrics(world.store))


def _forward_all(world, url, timeout=30):
    """Run a forwarder until the outbox is settled; (row counts, the stopped forwarder)."""
    forwarder = _forwarder(world, url)
    forwarder.start()
    try:
        return _wait_settled(world, timeout), forwarder
    finally:
        forwarder.stop()


def _wait_settled(world, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with world.store.reading() as tx:
            counts = outbox.state_counts(tx)
        if counts["pending"] == counts["sending"] == 0:
            return counts
        time.sleep(0.1)
    raise AssertionError(f"outbox not settled: {counts}")


def test_per_row_refusals_become_dead_letters_and_the_rest_is_accepted(world, platform):
    for serial in range(8):
        world.scan("dev-a", code(serial), at(9, serial))
    world.scan("dev-a", code(50, "8654321"), at(9, 30))  # XB02: the platform refuses this row
    counts, forwarder = _forward_all(world, platform.url)
    assert (counts["done"], counts["dead"]) == (8, 1)
    with world.store.reading() as tx:
        [letter] = outbox.dead_letters(tx)
    assert letter["code"] == code(50, "8654321") and "XB02不存在" in letter["error"]
    assert platform.counts()["accepted_rows"] == 8 and world.rates()["A1"].upload_rate == round(8 / 9, 6)


def test_unknown_outcomes_are_retried_with_the_same_msgid_and_never_doubled(world, platform):
    platform.set_faults({"error_rate": 0.3, "timeout_rate": 0.1, "hang_ms": 1500, "drop_rate": 0.2,
                         "reject_list_code": ""})
    for serial in range(60):
        world.scan("dev-a", code(serial), at(9, serial // 60, serial % 60))
    counts, forwarder = _forward_all(world, platform.url, timeout=90)
    sim = platform.counts()
    assert counts["done"] == 60 and sim["accepted_rows"] == 60 == sim["distinct_bchno"]
    assert sim.get("doubles", 0) == 0 and sim["replays"] >= 1  # a dropped answer was asked again, same msgid
    assert sorted(platform.accepted_codes()) == sorted(code(serial) for serial in range(60))


def test_the_breaker_opens_during_an_outage_and_probes_back(world, platform):
    platform.set_faults({"outage_start_s": 0, "outage_s": 1.5, "reject_list_code": ""})
    world.scan("dev-a", code(1), at(9))
    counts, forwarder = _forward_all(world, platform.url)
    assert counts["done"] == 1 and forwarder.breaker.opened >= 1
    assert platform.counts()["fault_outage"] >= 3


def test_a_row_that_cannot_be_built_is_a_dead_letter_and_the_others_go_up(world, monkeypatch):
    world.scan("dev-a", code(1), at(9), op=Operation.PURCHASE)
    world.scan("dev-a", code(2), at(9, 1), op=Operation.PURCHASE)
    world.scan("dev-a", code(3), at(9, 2), op=Operation.PURCHASE)
    from gateway.contract import mapping

    real_build = mapping.build_row

    def build_row(source, values, timezone):  # a row whose data breaks the mapping in a way nobody foresaw
        if code(2) in source.codes:
            raise ValueError("invalid literal for int() with base 10: '²²'")
        return real_build(source, values, timezone)

    monkeypatch.setattr(mapping, "build_row", build_row)
    made, _ = _plan(world)
    assert made >= 1
    states = dict(world.store.query("SELECT event_id, state FROM outbox"))
    assert states[2] == "dead" and states[1] != "pending" and states[3] != "pending"
    dead = world.store.query("SELECT event_id, error FROM outbox WHERE state = 'dead'")
    assert [event_id for event_id, _ in dead] == [2] and "ValueError" in dead[0][1]


def test_superscript_digits_are_no_date():
    from gateway.contract.mapping import platform_date

    assert platform_date("²²²²²²") == "" and platform_date("260100") == "2026-01-31"


def _sale_rows(world):
    """Every 3505 row planned so far, from the stored request bodies."""
    rows = []
    for (body,) in world.store.query("SELECT body FROM requests WHERE infno = '3505' ORDER BY id"):
        request = json.loads(body)
        node = request["input"]
        rows += node["selinfoDetail"] if "selinfoDetail" in node else [node["selinfo"]]
    return rows


def test_a_line_whose_boxes_arrive_between_planner_ticks_goes_up_once_with_its_true_quantity(world):
    """Issue 16: boxes of one 3-box line scanned a second apart, the planner ticking every half second. Each box
    was held from its own receipt, so each went up in a row of its own, each saying the line's full 3."""
    hold_ms = 120_000
    world.ticket("A1", "T1", at(9), ("XA01", 3), institution="")
    for box in range(3):
        world.scan("dev-a", code(box), at(9, 0, 1 + box), ticket="T1")
    tick = outbox.Planning(batch_size=20, sale_hold_ms=hold_ms, timezone="Asia/Shanghai",
                           values={INSTITUTION: {"fixmedins_name": "第一药房"}}, defaults=FORWARD_DEFAULTS)
    for half_seconds in range(2, 20):
        with world.store.transaction() as tx:
            outbox.plan(tx, tick, now_ms=at(9) + hold_ms + half_seconds * 500, limit=1000)
    rows = _sale_rows(world)
    assert sum(int(row["sel_retn_cnt"]) for row in rows) == 3, [(row["fixmedins_bchno"], row["sel_retn_cnt"])
                                                                 for row in rows]
    assert len(rows) == 1
    assert sorted(item["drug_trac_codg"] for item in rows[0]["drugtracinfo"]) == [code(0), code(1), code(2)]
