"""Admission: every message on its own, on a real store (SQLite, or PostgreSQL with --store postgresql).

The messages an attack found to stop all ingest (one poison message, redelivered for ever) are regression
cases here, each between two good events of another device in one batch; the same cases go over Mosquitto in
tests/system/test_hostile_input.py.
"""

from __future__ import annotations

import os

import cbor2
import pytest
from stores import fresh_location

from gateway.domain import pipeline
from gateway.ingest.loop import Admission, Message, StoreTrouble
from gateway.metrics import Metrics
from gateway.rules import Rules
from gateway.settings import IngestSettings
from gateway.store.opening import open_store
from soaks.fuzz_ingest import GOOD_DEVICE, HOSTILE_DEVICE, POISON, good_event, register

EV = f"tc/v1/{HOSTILE_DEVICE}/ev"


def _admit(admission, pairs):
    """The messages through sort and commit; (mids acknowledged, what was published)."""
    messages = [Message(mid, 1, topic, payload, 1767225600000) for mid, (topic, payload) in enumerate(pairs, 1)]
    acked, published = [], []

    def done(publishes, acks):
        published.extend(publishes)
        acked.extend(mid for mid, _ in acks)

    admission.commit(admission.sort(messages), done)
    return acked, published


def _reasons(admission):
    return {row[0] for row in admission.store.query("SELECT reason FROM quarantine")}


@pytest.mark.parametrize(("topic", "payload", "reason"), [case[1:] for case in POISON], ids=[c[0] for c in POISON])
def test_a_poison_message_is_quarantined_and_acknowledged_and_the_batch_goes_on(admission, topic, payload, reason):
    good = f"tc/v1/{GOOD_DEVICE}/ev"
    acked, published = _admit(admission, [(good, good_event(admission.good_key, 1)), (topic, payload),
                                          (good, good_event(admission.good_key, 2))])
    assert acked == [1, 2, 3]
    assert _reasons(admission) == {reason}
    assert admission.store.query("SELECT seq FROM events WHERE device = ? ORDER BY seq", (GOOD_DEVICE,)) == [(1,), (2,)]
    ack = next(cbor2.loads(payload) for topic, payload, _ in published if topic == f"tc/v1/{GOOD_DEVICE}/ack")
    assert ack[1] == 2


def test_a_message_whose_commit_fails_is_found_by_halving_and_quarantined_alone(admission, monkeypatch):
    real_commit = pipeline.commit
    poison_seq = 7

    def commit(store, rules, **batch):  # a fault only this one event brings, whichever batch holds it
        if any(item.event.device == GOOD_DEVICE and item.event.seq == poison_seq for item in batch["accepted"]):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return real_commit(store, rules, **batch)

    monkeypatch.setattr(pipeline, "commit", commit)
    pairs = [(f"tc/v1/{GOOD_DEVICE}/ev", good_event(admission.good_key, seq)) for seq in range(1, 21)]
    acked, _ = _admit(admission, pairs)
    assert sorted(acked) == list(range(1, 21))
    stored = [seq for (seq,) in admission.store.query("SELECT seq FROM events WHERE device = ?", (GOOD_DEVICE,))]
    assert sorted(stored) == [seq for seq in range(1, 21) if seq != poison_seq]
    rows = admission.store.query("SELECT reason, detail, message FROM quarantine")
    assert [(reason, bytes(message)) for reason, _, message in rows] == [("commit_failed", pairs[poison_seq - 1][1])]
    assert "OverflowError" in rows[0][1]
    assert admission.counts["rejected_commit_failed"] == 1


def test_a_store_that_fails_sends_nothing_to_quarantine_and_acknowledges_nothing(admission, monkeypatch):
    def commit(store, rules, **batch):
        raise OSError("disk I/O error")

    monkeypatch.setattr(pipeline, "commit", commit)
    with pytest.raises(StoreTrouble):
        _admit(admission, [(f"tc/v1/{GOOD_DEVICE}/ev", good_event(admission.good_key, seq)) for seq in range(1, 9)])
    monkeypatch.undo()
    assert admission.store.query("SELECT count(*) FROM quarantine") == [(0,)]


def test_a_key_that_cannot_be_read_is_the_store_s_trouble_not_the_message_s(admission, monkeypatch):
    def broken(device):
        raise OSError("database is locked")

    monkeypatch.setattr(admission.store, "device_key", broken)
    with pytest.raises(StoreTrouble):
        admission.sort([Message(1, 1, f"tc/v1/{GOOD_DEVICE}/ev", good_event(admission.good_key, 1), 0)])


def test_the_quarantine_keeps_its_bounds_and_its_counts(tmp_path):
    store = open_store(fresh_location(tmp_path))
    register(store, os.urandom(32))
    admission = Admission(IngestSettings(quarantine_max_rows=100, quarantine_max_bytes=20_000), store, Rules(),
                          Metrics(store))
    for round_ in range(10):
        _admit(admission, [(EV, b"\xd1junk %d %d" % (round_, index) + b"x" * 50) for index in range(40)])
        _admit(admission, [(EV, b"\xd1big %d" % round_ + b"y" * 3000)])
    rows, size = store.query("SELECT count(*), sum(length(message)) FROM quarantine")[0]
    assert rows <= 100 and size <= 20_000
    kept = dict(store.query("SELECT reason, count(*) FROM quarantine GROUP BY reason"))
    dropped = dict(store.query("SELECT reason, messages FROM quarantine_dropped"))
    assert {reason: kept.get(reason, 0) + dropped.get(reason, 0) for reason in kept | dropped} == {
        "not_mac0": 400, "oversized": 10}
    rendered = Metrics(store).render().decode()
    assert f"tracegw_quarantine_messages {float(rows)}" in rendered
    assert f"tracegw_quarantine_dropped_messages {float(410 - rows)}" in rendered
    newest = store.query("SELECT message FROM quarantine ORDER BY id DESC LIMIT 1")[0][0]
    assert bytes(newest).startswith(b"\xd1big 9")  # the oldest went first
    store.close()


def test_a_device_cannot_walk_its_seqs_up_window_by_window(admission):
    from soaks.fuzz_ingest import _good_fields, mac0

    def event(seq):
        fields = _good_fields(HOSTILE_DEVICE, 1)
        fields[2] = seq
        return (EV, mac0(cbor2.dumps(fields)))

    _admit(admission, [event(100_000)])  # within the window of the acked seq 0: stored, a gap before it
    _admit(admission, [event(200_000)])  # beyond the acked seq (still 0) + the window: refused
    stored = admission.store.query("SELECT seq FROM events WHERE device = ?", (HOSTILE_DEVICE,))
    assert stored == [(100_000,)] and _reasons(admission) == {"seq_out_of_window"}
    assert admission.store.query("SELECT max_seq FROM device_state WHERE device = ?", (HOSTILE_DEVICE,)) == [
        (100_000,)]


def test_a_huge_topic_is_kept_cut_short_and_counted_in_the_bounds(admission):
    topic = "tc/v1/" + "8" * 8 + "A" * 60_000 + "/ev"
    _admit(admission, [(topic, b"\x00")])
    kept_topic, device = admission.store.query("SELECT topic, device FROM quarantine")[0]
    assert len(kept_topic) <= 200 and len(device) <= 64
