"""Device status: the alerts it drives (and clears), offline detection, and the missing tail."""

import pytest
from scenario import at, code, one_counter

from gateway.domain import devices, pipeline
from gateway.rules import Rules
from gateway.wire.status import Status

GOOD = {0: 1, 1: True, 2: "0.3.0", 3: 60, 4: 0, 5: 50000, 6: 3, 7: 1, 8: 3, 9: 2, 10: 700, 11: 65536, 12: 0, 13: 1,
        14: {0: 3}}


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, "P-A", Rules(offline_after_s=300, backlog_alert=10, mac_failure_burst=3)) as world:
        yield world


def test_a_status_shows_a_missing_tail_and_drives_backlog_and_clock_alerts(world):
    world.scan("dev-a", code(1), at(9))
    world.status("dev-a", at(9, 1), last_seq=5, backlog=12, clock=0)
    [view] = _devices(world)
    assert (view.online, view.max_seq, view.stored, view.missing_seqs, view.backlog) == (True, 5, 1, 4, 12)
    assert world.alert_types() == ["backlog_high", "clock_unsynced"]
    world.status("dev-a", at(9, 2), last_seq=5, backlog=0, clock=1)
    assert {alert.type: alert.state for alert in world.alerts()} == {"backlog_high": "resolved",
                                                                     "clock_unsynced": "resolved"}
    assert world.rates()["A1"].missing_seqs == 4


def test_offline_is_raised_after_the_grace_time_and_cleared_on_return(world):
    world.status("dev-a", at(9), clock=1)
    world.status("dev-a", at(9, 1), online=False)  # the Last Will
    world.sweep(at(9, 5))
    assert world.alerts() == []
    world.sweep(at(9, 7))
    world.sweep(at(9, 8))
    [alert] = world.alerts()
    assert (alert.type, alert.device, alert.count) == ("device_offline", "dev-a", 1)
    world.status("dev-a", at(9, 9), clock=1)
    assert world.alerts()[0].state == "resolved"
    world.sweep(at(9, 20))  # online but silent (no status for 11 minutes): offline again
    assert [alert.state for alert in world.alerts("device_offline")] == ["open", "resolved"]


def test_a_status_from_an_unregistered_device_is_quarantined(world):
    pipeline.commit(world.store, world.rules, statuses=[(Status(device="ghost", online=True), at(9))])
    assert world.store.query("SELECT reason, device FROM quarantine") == [("unknown_device", "ghost")]


def test_a_burst_of_bad_macs_raises_an_alert(world):
    for number in range(3):
        refusal = pipeline.Rejected("tc/v1/dev-a/ev", "dev-a", "bad_mac", "tag", bytes([number]), at(9, number))
        pipeline.commit(world.store, world.rules, rejected=[refusal])
    [alert] = world.alerts()
    assert (alert.type, alert.device, alert.terminal) == ("mac_failures", "dev-a", "A1")


def _devices(world):
    with world.store.reading() as tx:
        return devices.list_devices(tx)
