"""The journal on both interpreters: durability, torn tails, damaged meta, trimming, capacity, seq continuity."""

import os

import pytest

from conftest import FirmwareError

CAPACITY = 8192
SEGMENT = 2048


def run(fw, folder, *ops, capacity=CAPACITY, segment=SEGMENT):
    return fw.call("journal_run", str(folder), capacity, segment, [list(op) for op in ops])


def taken(result):
    return [entry[1] for entry in result["trace"] if entry[0] == "taken"]


def read(result):
    return [entry[1] for entry in result["trace"] if entry[0] == "read" and entry[3]]


def segments(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".seg"))


def test_append_read_ack_and_reopen(fw, tmp_path):
    first = run(fw, tmp_path, ("append", 30, 100), ("read", 5), ("ack", 20), ("read", 100))
    assert taken(first) == list(range(1, 31))
    assert read(first) == [1, 2, 3, 4, 5, *range(21, 31)]
    assert first["state"]["syncs"] == 30 and first["state"]["bytes_written"] == 30 * 116
    again = run(fw, tmp_path, ("read", 100), ("append", 1, 50))
    assert again["state"]["boot"] == 2
    assert read(again) == list(range(21, 31))
    assert taken(again) == [31]


@pytest.mark.parametrize("cut", [1, 10, 15, 16, 17, 60, 115])
def test_torn_tail_is_cut_and_never_read(fw, tmp_path, cut):
    run(fw, tmp_path, ("append", 10, 100))
    last = tmp_path / segments(tmp_path)[-1]
    last.write_bytes(last.read_bytes()[:-cut])
    after = run(fw, tmp_path, ("read", 100), ("append", 1, 100))
    assert after["state"]["torn_cut"] == 1
    assert read(after) == list(range(1, 10))
    assert taken(after) == [10]  # the torn record never got its "taken": its seq is free
    assert read(run(fw, tmp_path, ("read", 100))) == list(range(1, 11))


@pytest.mark.parametrize("damage", ["garbage", "bitflip", "zeros"])
def test_damaged_tail_is_cut(fw, tmp_path, damage):
    run(fw, tmp_path, ("append", 5, 100))
    last = tmp_path / segments(tmp_path)[-1]
    data = bytearray(last.read_bytes())
    if damage == "garbage":
        data += os.urandom(37)
    elif damage == "bitflip":
        data[-3] ^= 0x10
    else:
        data += bytes(200)
    last.write_bytes(bytes(data))
    after = run(fw, tmp_path, ("read", 100))
    assert read(after) == (list(range(1, 6)) if damage != "bitflip" else list(range(1, 5)))
    assert after["state"]["torn_cut"] == 1


def test_segments_roll_trim_and_seq_survives_trimming(fw, tmp_path):
    result = run(fw, tmp_path, ("append", 60, 100))
    assert len(segments(tmp_path)) == 4
    trimmed = run(fw, tmp_path, ("ack", 60))
    assert segments(tmp_path) == ["00000004.seg"]
    assert trimmed["state"]["trimmed_seq"] == 51
    (tmp_path / "00000004.seg").unlink()  # even with every record gone, the meta keeps the seq
    assert taken(run(fw, tmp_path, ("append", 1, 10))) == [result["state"]["last_seq"] + 1]


def test_meta_copy_damage(fw, tmp_path):
    run(fw, tmp_path, ("append", 3, 10))
    run(fw, tmp_path, ("append", 3, 10))
    newest = max(["meta.a", "meta.b"], key=lambda name: (tmp_path / name).stat().st_mtime_ns)
    (tmp_path / newest).write_bytes(b"\x00" * 32)
    after = run(fw, tmp_path, ("append", 1, 10))
    assert taken(after) == [7]
    assert after["state"]["boot"] == 2  # the older copy's boot count, plus one
    for name in ("meta.a", "meta.b"):
        (tmp_path / name).write_bytes(b"junk")
    with pytest.raises(FirmwareError, match="both journal meta copies are damaged"):
        run(fw, tmp_path)


@pytest.mark.parametrize("torn", [b"", b"TCM1", b"TCM1\x01\x00\x00\x00\x01"])
def test_a_cut_in_the_very_first_meta_write_starts_afresh(fw, tmp_path, torn):
    """A new board's first boot cut while it wrote its first meta copy: one torn copy, no segment, nothing ever
    journalled. It starts at seq 1 (before, it refused to boot for ever); with a segment beside it, it still
    refuses, as that is damage, not a first boot."""
    (tmp_path / "meta.b").write_bytes(torn)
    after = run(fw, tmp_path, ("append", 2, 10))
    assert taken(after) == [1, 2] and after["state"]["boot"] == 1 and after["state"]["torn_cut"] == 1
    for name in ("meta.a", "meta.b"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "meta.a").write_bytes(torn)
    with pytest.raises(FirmwareError, match="both journal meta copies are damaged"):
        run(fw, tmp_path)


def test_lost_segment_resumes_past_the_reservation(fw, tmp_path):
    run(fw, tmp_path, ("append", 60, 100))
    (tmp_path / "00000002.seg").unlink()  # flash damage: records 18-34 are gone
    after = run(fw, tmp_path, ("read", 100), ("append", 1, 10))
    assert after["state"]["corrupt"] == 1
    assert read(after)[:17] == list(range(1, 18)) and read(after)[17:] == list(range(35, 61))
    assert taken(after) == [65]  # a gap the gateway will see, never a reused seq


def test_full_journal_refuses_and_recovers_after_acks(fw, tmp_path):
    full = run(fw, tmp_path, ("append", 80, 200))
    refused = [entry[1] for entry in full["trace"] if entry[0] == "full"]
    accepted = taken(full)
    assert refused and accepted == list(range(1, len(accepted) + 1))
    assert full["state"]["used_bytes"] <= CAPACITY
    recovered = run(fw, tmp_path, ("read", 200), ("ack", accepted[-1]), ("append", 5, 200), ("read", 200))
    assert read(recovered) == accepted + list(range(accepted[-1] + 1, accepted[-1] + 6))
    assert taken(recovered) == list(range(accepted[-1] + 1, accepted[-1] + 6))


def test_rewind_resends_from_a_seq(fw, tmp_path):
    result = run(fw, tmp_path, ("append", 20, 50), ("read", 20), ("rewind", 12), ("read", 3))
    assert read(result)[-3:] == [12, 13, 14]


def test_wrong_use_is_refused(fw, tmp_path):
    with pytest.raises(FirmwareError, match="capacity"):
        run(fw, tmp_path, capacity=1000, segment=800)
    with pytest.raises(FirmwareError, match="over the 400 limit"):
        run(fw, tmp_path, ("append", 1, 401))


def test_trimming_steps_over_a_lost_segment(fw, tmp_path):
    run(fw, tmp_path, ("append", 60, 100))
    (tmp_path / "00000002.seg").unlink()
    after = run(fw, tmp_path, ("ack", 60))
    assert segments(tmp_path) == ["00000004.seg"] and after["state"]["trimmed_seq"] == 51


@pytest.mark.parametrize("content", [b"", b"TC"])
def test_segment_cut_while_being_created_is_repaired(fw, tmp_path, content):
    run(fw, tmp_path, ("append", 20, 100))
    (tmp_path / "00000003.seg").write_bytes(content)  # power cut right after the roll created the file
    after = run(fw, tmp_path, ("append", 2, 100), ("read", 100))
    assert taken(after) == [21, 22] and read(after) == list(range(1, 23))
    assert (tmp_path / "00000003.seg").read_bytes()[:4] == b"TCJ1"


def test_append_allocates_nothing(micropython_firmware, tmp_path):
    """Journal.append writes from the buffers the journal took at boot: MicroPython's heap is locked around each
    of 50 appends (any allocation would raise MemoryError), and every record reads back."""
    result = micropython_firmware.call("journal_append_heap_locked", str(tmp_path), 50, 200)
    assert result == {"read_back": True, "last_seq": 51}
