"""An operator's withdrawal (3507) of a row the platform accepted: asked from the store (the CLI and the API call
the same function), sent by the planner, the outbox rows `withdrawn` and nothing sent in their place; refused at
once when the platform holds no such row, when the gateway is correcting it, when it is being withdrawn already,
or when an accepted return names it; a platform refusal leaves the row where it is."""

import pytest
from scenario import at, code, one_counter
from uplink import Uplink, planning

from gateway.domain import outbox, withdrawals
from gateway.rules import Rules
from gateway.wire.protocol import Operation
from tools.platform_sim import Faults, PlatformSim

INSTITUTION = "H44030000001"


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, INSTITUTION, Rules(match_window_s=300, unscanned_after_s=900)) as world:
        yield world


def _ask(world, bchno, reason="sale cancelled at the counter", now_ms=None):
    now_ms = now_ms or at(12)
    with world.store.transaction() as tx:
        return outbox.ask_withdrawal(tx, bchno, reason=reason, operator="店长", now_ms=now_ms)


def _states(world, op=Operation.SALE):
    return dict(world.store.query("SELECT e.code, o.state FROM outbox o JOIN events e ON e.id = o.event_id "
                                  "WHERE e.op = ?", (int(op),)))


def test_a_withdrawn_row_leaves_the_platform_for_good_with_its_reason(world, sim):
    uplink = Uplink(sim, planning(INSTITUTION, 0))
    world.ticket("A1", "T1", at(9), ("XA01", 3))  # three packs billed, two scanned: goes up once quiet
    world.scan("dev-a", code(1), at(9, 0, 10), ticket="T1")
    world.scan("dev-a", code(2), at(9, 0, 20), ticket="T1")
    world.scan("dev-a", code(3), at(9, 30))  # a sale of its own (no ticket near): TCE3
    uplink.tick(world.store, at(10))
    line_bchno = world.store.query("SELECT DISTINCT live_bchno FROM outbox WHERE live_bchno LIKE 'TCL%'")[0][0]
    asked = _ask(world, line_bchno)
    assert (asked.state, asked.infno, asked.institution) == ("asked", "3505", INSTITUTION)
    with pytest.raises(withdrawals.WithdrawalError, match="under way") as refused:
        _ask(world, line_bchno)
    assert refused.value.kind == "conflict"
    uplink.tick(world.store, at(12, 1))
    with world.store.reading() as tx:
        [done] = withdrawals.listing(tx)
        counts = outbox.state_counts(tx)
    assert done.state == "done" and done.error == ""
    assert _states(world) == {code(1): "withdrawn", code(2): "withdrawn", code(3): "done"}
    assert (counts["withdrawn"], counts["done"], counts["pending"]) == (2, 1, 0)
    errors = {error for (error,) in world.store.query("SELECT error FROM outbox WHERE state = 'withdrawn'")}
    assert errors == {"withdrawn by 店长: sale cancelled at the counter"}
    assert sim.live_codes() == [code(3)] and sim.counts()["withdrawn_rows"] == 1
    # a late scan of the withdrawn line does not bring it back; a return of a withdrawn sale is not sent
    world.scan("dev-a", code(4), at(12, 2), ticket="T1")
    world.scan("dev-a", code(1), at(12, 3), op=Operation.SALE_RETURN)
    for minute in (4, 5):
        uplink.tick(world.store, at(12, minute))
    assert _states(world)[code(4)] == "withdrawn"
    assert _states(world, Operation.SALE_RETURN) == {code(1): "withheld"}
    assert sim.live_codes() == [code(3)] and sim.counts()["accepted_rows"] == 2
    with pytest.raises(withdrawals.WithdrawalError, match="no row") as missing:
        _ask(world, line_bchno)  # gone from the platform
    assert missing.value.kind == "missing"


def test_what_cannot_be_withdrawn_is_refused_at_once(world, sim):
    uplink = Uplink(sim, planning(INSTITUTION, 0))
    world.scan("dev-a", code(1), at(9))
    uplink.tick(world.store, at(9, 1))
    world.scan("dev-a", code(1), at(9, 2), op=Operation.SALE_RETURN)
    uplink.tick(world.store, at(9, 3))
    with pytest.raises(withdrawals.WithdrawalError, match="named by the accepted return"):
        _ask(world, "TCE1")
    with pytest.raises(withdrawals.WithdrawalError, match="no row 'TCE99'"):
        _ask(world, "TCE99")
    with pytest.raises(withdrawals.WithdrawalError, match="needs a reason"):
        _ask(world, "TCE2", reason=" ")
    assert _ask(world, "TCE2").infno == "3506"  # the return itself may go
    world.scan("dev-a", code(5), at(9, 10))
    uplink.tick(world.store, at(9, 11))
    world.ticket("A1", "T5", at(9, 12), ("XA01", 1))  # claims TCE3's scan: the gateway must correct its row
    assert world.store.query("SELECT state FROM outbox WHERE live_bchno = 'TCE3'") == [("pending",)]
    with pytest.raises(withdrawals.WithdrawalError, match="being corrected"):
        _ask(world, "TCE3")


def test_a_withdrawal_the_platform_refuses_leaves_the_row_held(world, sim, tmp_path):
    world.scan("dev-a", code(1), at(9))
    Uplink(sim, planning(INSTITUTION, 0)).tick(world.store, at(9, 1))
    with PlatformSim(tmp_path / "other.sqlite3", Faults(), seed=4) as other:  # a platform that never took TCE1
        _ask(world, "TCE1")
        Uplink(other, planning(INSTITUTION, 0)).tick(world.store, at(12, 1))
    with world.store.reading() as tx:
        [refused] = withdrawals.listing(tx, state="refused")
    assert "TCE1无可删除的上传记录" in refused.error
    assert _states(world) == {code(1): "done"} and sim.live_codes() == [code(1)]
    assert _ask(world, "TCE1", now_ms=at(13)).state == "asked"  # it may be asked again
