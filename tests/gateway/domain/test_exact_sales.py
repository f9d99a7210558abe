"""Sale rows are exact (issue 16): a ticket line goes up once, with exactly the codes scanned for it and its true
quantity; what changes it after the platform accepted it is corrected with a 3507 withdrawal and one corrected row.
Checked against what the platform simulator holds per line, not only per msgid."""

import os
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from scenario import Scenario, at, code, one_counter
from uplink import Uplink, planning

from gateway.domain import outbox
from gateway.rules import Rules
from gateway.store.opening import open_store
from gateway.wire.protocol import Operation, Verdict
from tools.platform_sim import Faults, PlatformSim

INSTITUTION = "H44030000001"
HOLD_MS = 60_000


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, INSTITUTION, Rules(match_window_s=300, unscanned_after_s=900)) as world:
        yield world


@pytest.fixture
def uplink(sim):
    return Uplink(sim, planning(INSTITUTION, HOLD_MS))


def _held(sim, ticket, list_code="XA01"):
    return sim.sale_totals().get((INSTITUTION, ticket, list_code))


def _states(world):
    return dict(world.store.query("SELECT e.code, o.state FROM outbox o JOIN events e ON e.id = o.event_id"))


def test_a_line_waits_until_complete_or_quiet_then_goes_up_once(world, sim, uplink):
    world.ticket("A1", "T1", at(9), ("XA01", 3), ("XB02", 2))
    world.scan("dev-a", code(1), at(9, 0, 1), ticket="T1")
    world.scan("dev-a", code(2, "8654321"), at(9, 0, 1), ticket="T1")
    uplink.tick(world.store, at(9, 0, 30))
    assert sim.counts().get("accepted_rows_total", 0) == 0  # neither line is complete nor quiet
    for box in (2, 3):
        world.scan("dev-a", code(box), at(9, 0, 30 + box), ticket="T1")
    uplink.tick(world.store, at(9, 0, 34))  # XA01 complete: at once; XB02 (1 of 2) waits for the hold
    assert _held(sim, "T1") and _held(sim, "T1", "XB02") is None
    uplink.tick(world.store, at(9, 1, 2))  # quiet for 60 s since its last scan (9:00:01)
    assert _held(sim, "T1") .sold == Decimal(3) and sorted(_held(sim, "T1").codes) == [code(1), code(2), code(3)]
    assert _held(sim, "T1", "XB02").sold == Decimal(2) and _held(sim, "T1", "XB02").codes == (code(2, "8654321"),)
    counts = sim.counts()
    assert counts["live_rows"] == counts["accepted_rows"] == 2 and counts.get("code_doubles", 0) == 0


def test_a_late_scan_is_corrected_by_a_withdrawal_and_one_corrected_row(world, sim, uplink):
    world.ticket("A1", "T1", at(9), ("XA01", 3))
    world.scan("dev-a", code(1), at(9, 0, 1), ticket="T1")
    world.scan("dev-a", code(2), at(9, 0, 2), ticket="T1")
    uplink.tick(world.store, at(9, 2))
    assert _held(sim, "T1").sold == Decimal(3) and len(_held(sim, "T1").codes) == 2
    world.scan("dev-a", code(3), at(9, 30), ticket="T1")  # the device was offline half an hour
    uplink.tick(world.store, at(9, 30))  # the line is complete: its accepted row is withdrawn first
    assert _held(sim, "T1") is None and sim.counts()["withdrawn_rows"] == 1
    uplink.tick(world.store, at(9, 30, 1))
    held = _held(sim, "T1")
    assert held.sold == Decimal(3) and sorted(held.codes) == [code(1), code(2), code(3)]
    bchnos = [row[0] for row in world.store.query("SELECT DISTINCT live_bchno FROM outbox")]
    assert bchnos == ["TCL1-2"]
    counts = sim.counts()
    assert (counts["live_rows"], counts.get("code_doubles", 0), counts.get("doubles", 0)) == (1, 0, 0)
    assert world.rates()["A1"].counts["uploaded"] == 3  # each scan counted once, though sent twice


def test_scans_before_their_ticket_that_went_up_on_their_own_move_into_the_line(world, sim, uplink):
    world.scan("dev-a", code(1), at(9), ticket="T1")  # carries the ticket number
    world.scan("dev-a", code(2), at(9, 0, 5))  # none: matched by the window
    uplink.tick(world.store, at(9, 1, 10))  # no ticket within the hold: each goes up on its own, one pack
    assert _held(sim, "T1").sold == Decimal(1) and _held(sim, "TC2").sold == Decimal(1)
    world.ticket("A1", "T1", at(9, 0, 10), ("XA01", 2))  # the POS link was down
    assert _states(world) == {code(1): "pending", code(2): "pending"}
    uplink.tick(world.store, at(9, 5))  # both loose rows withdrawn
    uplink.tick(world.store, at(9, 5, 1))  # then the line's one row
    held = sim.sale_totals()
    assert set(held) == {(INSTITUTION, "T1", "XA01")}
    assert held[(INSTITUTION, "T1", "XA01")].sold == Decimal(2)
    assert sorted(held[(INSTITUTION, "T1", "XA01")].codes) == [code(1), code(2)]
    assert sim.counts()["withdrawn_rows"] == 2 and sim.counts().get("code_doubles", 0) == 0


def test_a_scan_its_ticket_claims_while_its_own_row_is_in_flight_moves_after_it_settles(world, sim, uplink):
    world.scan("dev-a", code(1), at(9), ticket="T1")
    with world.store.transaction() as tx:
        outbox.plan(tx, uplink.settings, now_ms=at(9, 1, 1), limit=100)
    assert _states(world) == {code(1): "sending"}
    world.ticket("A1", "T1", at(9), ("XA01", 1))  # arrives while the loose row is on its way
    uplink.tick(world.store, at(9, 1, 2))  # accepted: back to pending, to be moved
    assert _states(world) == {code(1): "pending"}
    uplink.tick(world.store, at(9, 1, 3))
    uplink.tick(world.store, at(9, 1, 4))
    assert set(sim.sale_totals()) == {(INSTITUTION, "T1", "XA01")}
    assert world.store.query("SELECT live_bchno FROM outbox") == [("TCL1",)]


def test_split_lines_carry_their_units_and_share_an_opened_pack(world, sim, uplink):
    world.ticket("A1", "T1", at(9), ("XA01", 5, True))
    world.ticket("A1", "T2", at(9, 10), ("XA01", 3, True), ("XB02", 1))
    world.scan("dev-a", code(1), at(9, 0, 1), ticket="T1", split=5)
    world.scan("dev-a", code(1), at(9, 10, 1), ticket="T2", split=3)  # the same opened box
    world.scan("dev-a", code(9, "8654321"), at(9, 10, 2), ticket="T2")
    uplink.tick(world.store, at(9, 11))
    assert (_held(sim, "T1").sold, _held(sim, "T2").sold, _held(sim, "T2", "XB02").sold) == (5, 3, 1)
    rows = [row for row in sim.sale_totals()]
    assert len(rows) == 3 and sim.counts().get("code_doubles", 0) == 0


def test_scans_the_ticket_does_not_sell_are_withheld(world, sim, uplink):
    world.ticket("A1", "T1", at(9), ("XA01", 1))
    world.scan("dev-a", code(1), at(9, 0, 1), ticket="T1")
    assert world.scan("dev-a", code(1), at(9, 0, 2), ticket="T1") == Verdict.DUPLICATE_SALE  # scanned twice
    world.scan("dev-a", code(2), at(9, 0, 3), ticket="T1")  # a box beyond the line's quantity
    assert world.scan("dev-a", code(3, "8654321"), at(9, 0, 4), ticket="T1") == Verdict.PRODUCT_MISMATCH
    uplink.tick(world.store, at(9, 5))
    assert set(sim.sale_totals()) == {(INSTITUTION, "T1", "XA01")} and _held(sim, "T1").sold == 1
    with world.store.reading() as tx:
        counts = outbox.state_counts(tx)
    assert (counts["done"], counts["withheld"]) == (1, 3)
    [reason] = {row[0] for row in world.store.query("SELECT error FROM outbox WHERE state = 'withheld'")}
    assert "tied to ticket T1 but to none of its lines" in reason


def test_a_return_names_the_live_row_and_waits_while_its_line_is_corrected(world, sim, uplink):
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    world.scan("dev-a", code(1), at(9, 0, 1), ticket="T1")
    uplink.tick(world.store, at(9, 2))  # quiet: TCL1 with one code
    world.scan("dev-a", code(2), at(9, 20), ticket="T1")  # late
    world.scan("dev-a", code(1), at(9, 20, 1), op=Operation.SALE_RETURN)
    uplink.tick(world.store, at(9, 21, 2))  # TCL1 withdrawn; the return waits
    uplink.tick(world.store, at(9, 21, 3))  # TCL1-2 goes up
    uplink.tick(world.store, at(9, 21, 4))  # then the return, naming it
    [(returned,)] = world.store.query("SELECT ref_bchno FROM outbox WHERE infno = '3506' AND state = 'done'")
    assert returned == "TCL1-2"
    assert sim.live_codes("3506") == [code(1)] and _held(sim, "T1").sold == 2
    counts = sim.counts()
    assert counts.get("returns_unmatched", 0) == counts.get("orphaned_returns", 0) == 0


def test_a_late_scan_of_a_line_whose_row_a_return_names_is_a_dead_letter_saying_so(world, sim, uplink):
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    world.scan("dev-a", code(1), at(9, 0, 1), ticket="T1")
    uplink.tick(world.store, at(9, 2))
    world.scan("dev-a", code(1), at(9, 5), op=Operation.SALE_RETURN)
    uplink.tick(world.store, at(9, 7))
    assert sim.live_codes("3506") == [code(1)]
    world.scan("dev-a", code(2), at(9, 20), ticket="T1")
    uplink.tick(world.store, at(9, 21, 1))
    with world.store.reading() as tx:
        [letter] = outbox.dead_letters(tx)
    assert letter["code"] == code(2) and "which the return TCE2 (3506) names" in letter["error"]
    assert _held(sim, "T1").sold == 2 and sim.counts().get("orphaned_returns", 0) == 0
    assert sim.counts().get("withdrawn_rows", 0) == 0


def test_a_refused_withdrawal_leaves_the_row_and_makes_the_late_scan_a_dead_letter(world, sim, uplink):
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    world.scan("dev-a", code(1), at(9, 0, 1), ticket="T1")
    uplink.tick(world.store, at(9, 2))
    body = (b'{"infno": "3507", "msgid": "H44030000001202611220930000999", "mdtrtarea_admvs": "440300", '
            b'"insuplc_admdvs": "440300", "recer_sys_code": "FSI_LOCAL", "infver": "V1.0", "opter_type": "1", '
            b'"opter": "1", "opter_name": "O", "inf_time": "2026-11-22 09:30:00", "fixmedins_code": "H44030000001", '
            b'"fixmedins_name": "F", "input": {"data": {"fixmedins_bchno": "TCL1", "inv_data_type": "4"}}}')
    assert sim.process(body)["output"]["result"]["retRslt"] == "1"  # someone deleted it at the platform by hand
    world.scan("dev-a", code(2), at(9, 20), ticket="T1")
    uplink.tick(world.store, at(9, 20, 1))
    with world.store.reading() as tx:
        [letter] = outbox.dead_letters(tx)
    assert letter["code"] == code(2) and "the withdrawal (3507) of row TCL1" in letter["error"]
    assert "无可删除的上传记录" in letter["error"]
    with world.store.transaction() as tx:
        assert outbox.requeue(tx, None, now_ms=at(9, 30)) == 1  # the same again: the platform has no TCL1
    uplink.tick(world.store, at(9, 30, 1))
    assert len(world.store.query("SELECT 1 FROM outbox WHERE state = 'dead'")) == 1


def test_a_gateway_restart_between_sending_and_settling_sends_the_same_request(world, sim, uplink):
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    world.scan("dev-a", code(1), at(9, 0, 1), ticket="T1")
    world.scan("dev-a", code(2), at(9, 0, 2), ticket="T1")
    uplink.tick(world.store, at(9, 1), crash_after=0)  # reached the platform, never settled
    world.store.close()
    world.store = open_store(world.location)
    uplink.restart(world.store)
    uplink.tick(world.store, at(9, 2))
    assert sim.counts()["replays"] == 1 and sim.counts()["accepted_rows"] == 1 and uplink.settled(world.store)


# The invariant, as a property: whatever the boxes per line, the order and delays in which scans, tickets and
# returns arrive, when the planner runs, when the gateway restarts (or dies with a request in flight) and how the
# platform fails, once everything has settled the platform holds for every ticket line exactly its quantity and
# exactly its codes, and no code twice.

@st.composite
def _sales(draw):
    """Tickets with lines, the scans of their boxes, returns, and when each arrives (seconds after 9:00)."""
    arrivals = []  # (second, kind, payload)
    serial = 0
    for number in range(draw(st.integers(1, 3))):
        ticket = f"T{number + 1}"
        lines = []
        for _ in range(draw(st.integers(1, 2))):
            kind = draw(st.sampled_from(["whole", "whole", "split"]))
            list_code = draw(st.sampled_from(["XA01", "XB02"])) if kind == "whole" else "XA01"
            quantity = draw(st.integers(1, 3))
            lines.append((list_code, quantity, kind == "split"))
            prefix = "8123456" if list_code == "XA01" else "8654321"
            boxes = 1 if kind == "split" else draw(st.integers(0, quantity))
            for _ in range(boxes):
                serial += 1
                text = code(900) if kind == "split" else code(serial, prefix)  # one opened pack for every split
                scanned = draw(st.integers(0, 400))
                with_number = draw(st.booleans()) or kind == "split"
                arrivals.append((scanned, "scan", (text, ticket if with_number else "", quantity if kind == "split"
                                                   else 0)))
                if kind == "whole" and draw(st.integers(0, 4)) == 0:
                    arrivals.append((scanned + draw(st.integers(1, 300)), "return", (text,)))
        arrivals.append((draw(st.integers(0, 400)), "ticket", (ticket, lines)))
    for second in draw(st.lists(st.integers(0, 700), max_size=12)):
        arrivals.append((second, draw(st.sampled_from(["tick", "tick", "tick", "restart", "crash"])), ()))
    arrivals.sort(key=lambda item: (item[0], item[1] != "ticket"))
    return arrivals


@settings(max_examples=int(os.environ.get("EXACT_SALES_EXAMPLES", "40")), deadline=None)
@given(arrivals=_sales(), hold_s=st.sampled_from([0, 30, 60]), faults=st.sampled_from([
    {}, {"error_rate": 0.25}, {"drop_rate": 0.25}, {"error_rate": 0.15, "timeout_rate": 0.1, "drop_rate": 0.15}]),
    seed=st.integers(0, 1000))
@example(arrivals=[  # a ticket claims two loose scans, a return names one of them: both stay loose
    (0, "ticket", ("T1", [("XA01", 1, False)])), (0, "scan", (code(1), "", 0)),
    (0, "scan", (code(2, "8654321"), "", 0)),
    (0, "scan", (code(3, "8654321"), "", 0)), (0, "tick", ()), (1, "return", (code(3, "8654321"),)), (1, "tick", ()),
    (2, "ticket", ("T2", [("XB02", 2, False), ("XB02", 1, False)]))], hold_s=0, faults={}, seed=0)
@example(arrivals=[  # ... and one never sent is a dead letter, so the return of it is one too
    (0, "ticket", ("T1", [("XA01", 1, False)])), (0, "scan", (code(1), "", 0)), (0, "scan", (code(2), "", 0)),
    (0, "scan", (code(4), "", 0)), (0, "tick", ()), (1, "return", (code(4),)), (2, "scan", (code(3), "", 0)),
    (3, "return", (code(3),)), (60, "tick", ()), (61, "tick", ()),
    (62, "ticket", ("T2", [("XA01", 1, False), ("XA01", 2, False)]))], hold_s=60, faults={}, seed=0)
def test_the_platform_holds_every_line_exactly_whatever_the_order_timing_restarts_and_faults(
        arrivals, hold_s, faults, seed):
    folder = Path(tempfile.mkdtemp(prefix="exact-"))
    world = Scenario(folder, Rules(match_window_s=300, unscanned_after_s=900))
    world.counter("dev-a", "A1", INSTITUTION)
    try:
        sim = PlatformSim(folder / "platform.sqlite3", Faults(**faults), seed=seed)  # in-process: not serving
        try:
            uplink = Uplink(sim, planning(INSTITUTION, hold_s * 1000))
            for second, kind, payload in arrivals:
                now = at(9) + second * 1000
                if kind == "ticket":
                    ticket, lines = payload
                    world.ticket("A1", ticket, at(9, 3), *lines)
                elif kind == "scan":
                    text, ticket, split = payload
                    world.scan("dev-a", text, now, ticket=ticket, split=split)
                elif kind == "return":
                    world.scan("dev-a", payload[0], now, op=Operation.SALE_RETURN)
                elif kind == "tick":
                    uplink.tick(world.store, now)
                else:  # the gateway stops (or dies with a request answered but not settled) and starts again
                    if kind == "crash":
                        uplink.tick(world.store, now, crash_after=seed % 3)
                    world.store.close()
                    world.store = open_store(world.location)
                    uplink.restart(world.store)
            sim.set_faults({"error_rate": 0, "drop_rate": 0, "timeout_rate": 0})
            end = at(9) + 1_000_000
            for step in range(40):
                uplink.tick(world.store, end + step * 1000)
                if uplink.settled(world.store):
                    break
            assert uplink.settled(world.store), world.store.query("SELECT state, count(*) FROM outbox GROUP BY state")
            _check_exact(world, sim)
        finally:
            sim.stop()
    finally:
        world.close()
        shutil.rmtree(folder, ignore_errors=True)


def _check_exact(world, sim):
    """What the platform holds, against what the gateway knows was sold: per (ticket, product) the quantity of each
    line that went up and the codes scanned for it; a scan tied to no ticket as its own pack (or units)."""
    expected: dict[tuple[str, str, str], list] = {}
    orphaned = []  # late scans of a line whose row a return names: dead letters saying so
    lines = dict((row[0], row[1:]) for row in world.store.query(
        "SELECT l.id, t.number, l.list_code, l.quantity FROM ticket_lines l JOIN tickets t ON t.id = l.ticket_id"))
    line_rows: dict[int, set] = {}
    for event_id, text, ticket, list_code, split, line_id, state, live, error in world.store.query(
            "SELECT e.id, e.code, e.ticket, e.list_code, e.split_qty, e.line_id, o.state, o.live_bchno, o.error "
            "FROM events e JOIN outbox o ON o.event_id = e.id WHERE e.op = 1"):
        if state == "withheld":  # tied to a ticket that does not sell it
            assert line_id is None
            continue
        if state == "dead":
            assert "which the return" in error, error
            orphaned.append(text)
            continue
        assert state == "done", (text, state)
        if live.startswith("TCL"):
            assert line_id is not None and live.split("-")[0] == f"TCL{line_id}", (live, line_id)
            number, line_code, quantity = lines[line_id]
            entry = expected.setdefault((INSTITUTION, number, line_code), [0, []])
            if live not in line_rows.setdefault(line_id, set()):
                line_rows[line_id].add(live)
                entry[0] += quantity
            entry[1].append(text)
        else:  # its own row: tied to no ticket, or claimed by one after a return named its row
            assert live == f"TCE{event_id}"
            if line_id is not None:  # its line's loose rows stay all, since a return names one of them
                assert world.store.query("SELECT 1 FROM outbox r JOIN outbox o ON o.live_bchno = r.ref_bchno JOIN "
                                         "events e ON e.id = o.event_id WHERE e.line_id = ? AND r.state = 'done' "
                                         "AND o.live_bchno LIKE 'TCE%'", (line_id,))
            entry = expected.setdefault((INSTITUTION, ticket or f"TC{event_id}", list_code), [0, []])
            entry[0] += split or 1
            entry[1].append(text)
    assert all(len(rows) == 1 for rows in line_rows.values()), line_rows  # one live row per line
    held = sim.sale_totals()
    assert {key: (Decimal(quantity), sorted(codes)) for key, (quantity, codes) in expected.items()} == {
        key: (total.sold, sorted(total.codes)) for key, total in held.items() if total.sold or total.codes}
    returns = []
    for event_id, text, state in world.store.query("SELECT e.id, e.code, o.state FROM events e JOIN outbox o "
                                                   "ON o.event_id = e.id WHERE e.op = 2"):
        if state in ("withheld", "dead"):  # it returns a sale scan that never went up: withheld, or a dead letter
            [(sold, why)] = world.store.query(
                "SELECT o.state, o.error FROM events e JOIN outbox o ON o.event_id = e.id "
                "WHERE e.code = ? AND e.op = 1 AND e.id < ? ORDER BY e.id DESC LIMIT 1", (text, event_id))
            assert sold == state, (sold, state)
            if state == "dead":
                assert "which the return" in why
                orphaned.append(text)
        else:
            returns.append(text)
    assert sorted(sim.live_codes("3506")) == sorted(returns)
    counts = sim.counts()
    event(f"rows withdrawn: {min(counts.get('withdrawn_rows', 0), 3)}+; late scans a return blocked: {len(orphaned)}")
    event(f"requests answered from the record (lost answers, restarts): {counts.get('replays', 0) > 0}")
    for problem in ("code_doubles", "doubles", "returns_unmatched", "orphaned_returns"):
        assert counts.get(problem, 0) == 0, (problem, counts)
    assert not world.store.query("SELECT state FROM outbox WHERE state NOT IN ('done', 'dead', 'withheld')")
    dead = world.store.query("SELECT count(*) FROM outbox WHERE state = 'dead'")[0][0]
    assert dead == len(orphaned)
