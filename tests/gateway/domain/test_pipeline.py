"""Acks over a batch: the contiguous stored seq, however the device's events arrive (in order, with gaps filled
later, repeated within one batch), on either backend."""

import pytest
from stores import fresh_location

from gateway.domain import pipeline
from gateway.rules import Rules
from gateway.store.base import Device
from gateway.store.opening import open_store
from gateway.wire.protocol import Event, Operation, Verdict
from tcagent.codec import codes


@pytest.fixture
def store(tmp_path):
    store = open_store(fresh_location(tmp_path))
    store.add_device(Device(device="d1", key=bytes(32), terminal="T1", institution="P1"))
    yield store
    store.close()


def _sale(seq, box=None, signed=None):
    scan = codes.decode(f"8123456{box if box is not None else seq:013d}".encode())
    event = Event(device="d1", seq=seq, boot=1, time_ms=1767225600000 + seq, uptime_ms=seq, clock=1,
                  op=Operation.SALE, raw=scan.raw, aim=scan.aim.decode(), kind=scan.kind, code=scan.code.decode(),
                  pid=scan.pid.decode(), serial=scan.serial.decode(), lot=scan.lot.decode(),
                  expiry=scan.expiry.decode(), made=scan.made.decode(), err=scan.err, ticket="",
                  split_qty=0)
    return pipeline.Accepted(event, signed or b"signed-%d" % seq, 1767225600000 + seq)


def _commit(store, *events):
    return pipeline.commit(store, Rules(), accepted=list(events))


def test_the_ack_covers_contiguous_seqs_and_waits_for_a_gap_to_be_filled(store):
    assert _commit(store, _sale(1), _sale(2)).acks["d1"].acked_seq == 2
    assert _commit(store, _sale(5)).acks["d1"].acked_seq == 2
    assert _commit(store, _sale(4)).acks["d1"].acked_seq == 2
    assert _commit(store, _sale(3)).acks["d1"].acked_seq == 5  # 4 and 5, stored before, are found
    assert store.query("SELECT acked_seq, max_seq, stored FROM device_state") == [(5, 5, 5)]


def test_a_repeat_in_one_batch_is_a_duplicate_and_a_changed_repeat_a_replay(store):
    result = _commit(store, _sale(1), _sale(1), _sale(2), _sale(2, signed=b"other"))
    assert (result.stored, result.duplicates, result.quarantined) == (2, 1, {"replay": 1})
    assert result.acks["d1"].acked_seq == 2
    assert result.acks["d1"].verdicts == [(1, Verdict.OK), (1, Verdict.OK), (2, Verdict.OK)]


def test_a_box_sold_twice_in_one_batch_is_caught(store):
    result = _commit(store, _sale(1, box=7), _sale(2, box=7))
    assert result.acks["d1"].verdicts == [(1, Verdict.OK), (2, Verdict.DUPLICATE_SALE)]
