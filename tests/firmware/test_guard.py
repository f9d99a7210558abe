"""The command replay guard on both interpreters: a power cut at any byte of its write never lets an older
command in, and a lost guard refuses commands until the clock gives it a floor."""

import os

import cbor2
import pytest

from tcagent.codec import cose

KEY = bytes(range(32))
NOW = 1767225600000
DAMAGE = ("truncated", "torn_over_old", "erased_tail", "bitflip")


def guard(fw, folder, *ops, new_device=False):
    return fw.call("guard_run", str(folder), new_device, [["accept", *op] for op in ops])


def snapshot(folder):
    """The files directly in `folder` (the journal's folder below it is left as it is)."""
    return {name: (folder / name).read_bytes() for name in os.listdir(folder) if (folder / name).is_file()}


def restore(folder, files):
    for name in os.listdir(folder):
        if name not in files and (folder / name).is_file():
            (folder / name).unlink()
    for name, data in files.items():
        (folder / name).write_bytes(data)


def damaged(new, old, offset, how):
    """The file as a power cut (or a flash fault) at `offset` of writing `new` over `old` could leave it."""
    if how == "truncated":
        return new[:offset]
    if how == "torn_over_old":
        return new[:offset] + old[offset:]
    if how == "erased_tail":
        return new[:offset] + b"\xff" * (len(new) - offset)
    flipped = bytearray(new)
    flipped[min(offset, len(new) - 1)] ^= 0x01
    return bytes(flipped)


def changed_files(before, after):
    return [name for name in after if before.get(name) != after[name]]


def test_fresh_device_starts_at_zero_and_never_goes_back(fw, tmp_path):
    assert guard(fw, tmp_path, new_device=True) == {"answers": [], "last_id": 0, "lost": False}
    assert guard(fw, tmp_path, (5, 0), (5, 0), (3, 0), (9, 0))["answers"] == [True, False, False, True]
    assert guard(fw, tmp_path, (9, 0), (0, 0), (-1, 0), (2**64, 0), (2**64 - 1, 0))["answers"] == [
        False, False, False, False, True]


@pytest.mark.parametrize("how", DAMAGE)
def test_a_cut_at_every_byte_of_a_write_leaves_the_old_or_the_new_id(fw, tmp_path, how):
    guard(fw, tmp_path, new_device=True)
    guard(fw, tmp_path, (5, 0), (7, 0))
    before = snapshot(tmp_path)
    assert guard(fw, tmp_path, (9, 0))["answers"] == [True]
    after = snapshot(tmp_path)
    [written] = changed_files(before, after)
    new, old = after[written], before.get(written, b"")
    for offset in range(len(new) + 1):
        restore(tmp_path, {**after, written: damaged(new, old, offset, how)})
        state = guard(fw, tmp_path, (7, 0), (3, 0))
        assert not state["lost"] and state["last_id"] in (7, 9), (offset, state)
        assert state["answers"] == [False, False], offset  # the older commands stay refused
        if state["last_id"] == 7:
            assert guard(fw, tmp_path, (9, 0))["answers"] == [True]  # the command cut short can still come


def test_every_cut_through_a_series_of_writes_never_goes_backwards(fw, tmp_path):
    guard(fw, tmp_path, new_device=True)
    accepted = 0
    for command_id in (3, 4, 10, 11, 200):
        before = snapshot(tmp_path)
        guard(fw, tmp_path, (command_id, 0))
        after = snapshot(tmp_path)
        [written] = changed_files(before, after)
        for offset in range(0, len(after[written]) + 1, 3):
            restore(tmp_path, {**after, written: after[written][:offset]})
            state = guard(fw, tmp_path)
            assert state["last_id"] in (accepted, command_id) and not state["lost"], (command_id, offset, state)
        restore(tmp_path, after)
        accepted = command_id


@pytest.mark.parametrize("damage", ["junk", "empty", "missing"])
def test_a_lost_guard_refuses_until_the_clock_gives_a_floor(fw, tmp_path, damage):
    guard(fw, tmp_path, new_device=True)
    guard(fw, tmp_path, (NOW - 10, 0), (NOW - 5, 0))
    for name in ("command.a", "command.b"):
        if damage == "missing":
            (tmp_path / name).unlink()
        else:
            (tmp_path / name).write_bytes(os.urandom(20) if damage == "junk" else b"")
    locked = guard(fw, tmp_path, (NOW - 1, 0), (2**63, 0))
    assert locked == {"answers": [False, False], "last_id": 0, "lost": True}
    unlocked = guard(fw, tmp_path, (NOW - 1, NOW), (NOW, NOW), (NOW + 1, NOW))
    assert unlocked == {"answers": [False, False, True], "last_id": NOW + 1, "lost": False}
    assert guard(fw, tmp_path, (NOW - 1, 0)) == {"answers": [False], "last_id": NOW + 1, "lost": False}


def test_the_plain_file_of_firmware_0_2_0_is_taken_over_once(fw, tmp_path):
    (tmp_path / "command.id").write_text("42")
    assert guard(fw, tmp_path, (42, 0), (43, 0)) == {"answers": [False, True], "last_id": 43, "lost": False}
    assert not (tmp_path / "command.id").exists()
    assert guard(fw, tmp_path)["last_id"] == 43


@pytest.mark.parametrize("content", ["", "4x", "   "])
def test_a_torn_plain_file_of_firmware_0_2_0_means_a_lost_guard(fw, tmp_path, content):
    (tmp_path / "command.id").write_text(content)
    assert guard(fw, tmp_path, (1, 0), new_device=True)["lost"]


def signed_command(command_id, kind, argument):
    payload = cbor2.dumps({0: 1, 1: command_id, 2: kind, 3: NOW, 4: argument})
    return cose.sign(cose.MacKey(KEY), payload, b"gateway")


def feed(fw, folder, *commands, clock=1):
    return fw.call("agent_feed", str(folder), KEY, 0, [["cmd", command] for command in commands], clock=clock)


def test_captured_command_is_refused_after_a_power_cut_during_the_next_commands_write(fw, tmp_path):
    """The attack of issue 14: cut the power while the device stores a command id, then replay an older one."""
    old_command = signed_command(5, 2, 3)
    assert feed(fw, tmp_path, old_command)["mode"] == 3
    before = snapshot(tmp_path)
    assert feed(fw, tmp_path, signed_command(9, 2, 4))["mode"] == 4
    after = snapshot(tmp_path)
    written = [name for name in changed_files(before, after) if name.startswith("command")]
    assert written
    for how in ("truncated", "torn_over_old", "erased_tail"):
        for name in written:
            new, old = after[name], before.get(name, b"")
            for offset in range(len(new) + 1):
                restore(tmp_path, {**after, name: damaged(new, old, offset, how)})
                state = feed(fw, tmp_path, old_command)
                assert state["mode"] == 1 and state["counts"]["commands_rejected"] == 1, (how, name, offset, state)


@pytest.mark.parametrize("clock", [0, 1])
def test_agent_with_a_lost_guard_raises_the_alarm_and_waits_for_a_synced_clock(fw, tmp_path, clock):
    feed(fw, tmp_path, signed_command(5, 2, 3))
    for name in ("command.a", "command.b"):
        (tmp_path / name).write_bytes(b"\x00" * 20)
    state = feed(fw, tmp_path, signed_command(6, 2, 4), signed_command(NOW + 60000, 2, 5), clock=clock)
    if clock:  # NTP: ids at or below the clock (issued before now) are refused, newer ones pass
        assert state["mode"] == 5 and not state["guard_lost"] and not state["alarms"] & 16
        assert state["counts"]["commands_rejected"] == 1
    else:  # unsynced: nothing can tell a fresh command from a captured one
        assert state["mode"] == 1 and state["guard_lost"] and state["alarms"] & 16
        assert state["counts"]["commands_rejected"] == 2
