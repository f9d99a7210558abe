"""python -m soaks.fuzz_ingest: hostile messages through the gateway's ingest path, with a good device served
beside them.

The messages come from hypothesis strategies of what a careless or hostile device or POS can publish: raw
bytes; CBOR with every semantic tag, huge integers and deep nesting; COSE_Mac0 with broken headers, tags and
shapes; events correctly signed with a hostile device's real key but carrying wrong types, huge or negative
numbers, NUL characters, missing and unknown keys and far-away seqs; device batches of any length; statuses
of any shape (retained too, over MQTT); POS tickets as any JSON (deep nesting, times of 10^30) or none.

In-process (this command, and tests/soaks/test_fuzz_ingest.py): every batch goes through the gateway's own
`Admission.sort` and `Admission.commit` on a real store, with one good event of a good device in it. An
*escape* is any exception out of either, a message left unacknowledged, a refusal without a reason, or a good
event not stored. The command prints the core count, the rate, the reasons counted and every escape (topic and
payload in hex) and exits 1 if there was one. Over MQTT: tests/system/test_hostile_input.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seeded
from hypothesis import strategies as st

from gateway.ingest.loop import Admission, Message
from gateway.metrics import Metrics
from gateway.rules import Rules
from gateway.settings import IngestSettings
from gateway.store.base import Device, Store
from gateway.store.opening import open_store
from gateway.store.sqlite import SQLiteStore
from tcagent.codec import codes, cose, event

GOOD_DEVICE = "fuzz-good"
HOSTILE_DEVICE = "fuzz-bad"
TERMINAL = "T-FUZZ"
HOSTILE_KEY = bytes(range(32))
"""The hostile device's real key: its events pass the MAC and reach the schema, the seq window and the commit."""
_SEMANTIC_TAGS = [0, 1, 2, 3, 4, 5, 17, 21, 22, 23, 24, 25, 28, 29, 30, 32, 35, 36, 37, 100, 256, 258, 260, 261,
                  1004, 55799, 2**16, 2**32, 2**64 - 1]
_EDGE_INTS = [0, -1, 2**31, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -(2**64), 10**30]
_JUNK: list[Any] = [*_EDGE_INTS, "", "\x00", "a\x00b", "x" * 600, "码", b"", b"\x00" * 600, [], {}, None, True, 1.5,
                    float("nan"), 4_102_444_800_001]
"""Values a mutant puts in a field."""


def cbor_values() -> st.SearchStrategy[Any]:
    """Any CBOR data item cbor2 can write: nested arrays, maps and tags (semantic ones too) of scalars."""
    scalars = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(_EDGE_INTS), st.floats(), st.booleans(),
                        st.none(), st.text(max_size=30), st.binary(max_size=30))

    def nest(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(st.lists(children, max_size=4),
                         st.dictionaries(st.one_of(st.integers(-3, 25), st.text(max_size=4)), children, max_size=4),
                         st.builds(cbor2.CBORTag, st.sampled_from(_SEMANTIC_TAGS) | st.integers(0, 2**64 - 1),
                                   children))

    return st.recursive(scalars, nest, max_leaves=12)


def _bytes_of(value: Any) -> bytes:
    return cbor2.dumps(value)


def mutated(data: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """The bytes cut short, with bytes flipped, or with junk after them."""
    def mutate(draw: st.DrawFn) -> bytes:
        base = bytearray(draw(data))
        how = draw(st.sampled_from(["cut", "flip", "tail", "none"]))
        if how == "cut" and base:
            del base[draw(st.integers(0, len(base) - 1)):]
        elif how == "flip" and base:
            base[draw(st.integers(0, len(base) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif how == "tail":
            base += draw(st.binary(min_size=1, max_size=8))
        return bytes(base)
    return st.composite(mutate)()


def any_cbor() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=200), cbor_values().map(_bytes_of), mutated(cbor_values().map(_bytes_of)),
                     st.just(bytes.fromhex("d8641bffffffffffffffff")),  # tag 100 holding 2^64-1
                     st.integers(1, 600).map(lambda depth: b"\x81" * depth + b"\x00"))


def _good_fields(device: str, seq: int) -> dict[int, Any]:
    scan = codes.decode(f"8123456{seq % 10**9:09d}0000".encode())
    fields: dict[int, Any] = cbor2.loads(event.encode(device, seq, 1, 1767225600000 + seq, seq, 1, 1, scan, "", 0))
    return fields


def event_maps() -> st.SearchStrategy[dict[Any, Any]]:
    """A hostile device's event: a well-formed one as it is, or with a field replaced, dropped or added."""
    seqs = st.one_of(st.integers(1, 200_000), st.sampled_from(_EDGE_INTS))
    junk = cbor_values() | st.sampled_from(_JUNK)

    def build(draw: st.DrawFn) -> dict[Any, Any]:
        seq = draw(seqs)
        fields: dict[Any, Any] = _good_fields(HOSTILE_DEVICE, seq if 0 < seq < 2**53 else 1)
        fields[2] = seq
        how = draw(st.sampled_from(["as is", "replace", "replace", "drop", "add"]))
        if how == "replace":
            fields[draw(st.sampled_from(sorted(fields)))] = draw(junk)
        elif how == "drop":
            del fields[draw(st.sampled_from(sorted(fields)))]
        elif how == "add":
            fields[draw(st.integers(-2, 40) | st.text(max_size=3))] = draw(junk)
        return fields
    return st.composite(build)()


def mac0(payload: bytes, *, kid: bytes = HOSTILE_DEVICE.encode(), key: bytes = HOSTILE_KEY) -> bytes:
    """A correctly signed COSE_Mac0 (the firmware's own code signs it)."""
    signed: bytes = cose.sign(cose.MacKey(key), payload, kid)
    return signed


def cose_messages() -> st.SearchStrategy[bytes]:
    """Signed hostile events, and COSE_Mac0 with one part broken."""
    signed = event_maps().map(lambda fields: mac0(cbor2.dumps(fields)))

    def broken(draw: st.DrawFn) -> bytes:
        parts: list[Any] = [cbor2.dumps({1: 5}), {4: HOSTILE_DEVICE.encode()}, cbor2.dumps(draw(event_maps())),
                            draw(st.binary(min_size=32, max_size=32))]
        index = draw(st.integers(0, 4))
        if index < 4:
            parts[index] = draw(cbor_values() | st.binary(max_size=40))
        else:
            parts.append(draw(cbor_values()))
        tag = draw(st.sampled_from([17, 17, 18, 96]))
        return cbor2.dumps(cbor2.CBORTag(tag, parts))
    return st.one_of(signed, signed, signed, st.composite(broken)(), mutated(signed))


def device_batches() -> st.SearchStrategy[bytes]:
    """A CBOR array of messages, as a device drains its journal (up to 64 allowed; longer ones too)."""
    def build(items: list[bytes]) -> bytes:
        head = bytes([0x80 | len(items)]) if len(items) < 24 else bytes([0x98, len(items)])
        return head + b"".join(items)
    return st.lists(cose_messages(), max_size=70).map(build)


def status_payloads() -> st.SearchStrategy[bytes]:
    fields = st.dictionaries(st.integers(0, 15), cbor_values() | st.sampled_from(_EDGE_INTS), max_size=14)
    shaped = fields.map(lambda extra: cbor2.dumps({0: 1, 1: True, **extra}))
    return st.one_of(shaped, any_cbor())


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                        st.text(max_size=20))
    return st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=10)


def ticket_payloads() -> st.SearchStrategy[bytes]:
    """POS tickets: well-formed ones with fields replaced, any JSON, deep nesting, not JSON at all."""
    def build(draw: st.DrawFn) -> bytes:
        ticket: dict[str, Any] = {
            "number": draw(st.text(min_size=1, max_size=12)), "terminal": TERMINAL,
            "time": draw(st.sampled_from(["2026-01-01T10:00:00+08:00", 1e30, 10**30, -1, "9999-99-99", None])),
            "lines": [{"list_code": "X01", "quantity": draw(st.sampled_from([1, 0, -1, 10**20, 1.5, "2"])),
                       "split": draw(st.sampled_from([False, True, 1, None]))}],
        }
        ticket.update(draw(st.dictionaries(st.sampled_from(["number", "terminal", "time", "institution", "lines",
                                                            "platform", "extra"]),
                                           _json_values() | st.just("a\u0000b"), max_size=2)))
        return json.dumps(ticket).encode()
    return st.one_of(st.composite(build)(), _json_values().map(lambda value: json.dumps(value).encode()),
                     st.integers(1, 30_000).map(lambda depth: b"[" * depth + b"]" * depth),
                     st.binary(max_size=100))


def answer_payloads() -> st.SearchStrategy[bytes]:
    """Command answers (tc/v1/<dev>/res) signed by the hostile device: of any shape, and near-good maps with one
    field of any value; also unsigned CBOR."""
    near = st.fixed_dictionaries({0: st.just(1), 1: st.integers(0, 2**64), 2: st.integers(0, 9),
                                  3: st.integers(0, 9), 4: st.integers(0, 2**64)}).flatmap(
        lambda fields: st.dictionaries(st.integers(0, 7), cbor_values(), max_size=2).map(
            lambda changes: {**fields, **changes}))
    return st.one_of(near.map(lambda fields: mac0(cbor2.dumps(fields))),
                     any_cbor().map(lambda payload: mac0(payload)), any_cbor())


def messages() -> st.SearchStrategy[tuple[str, bytes]]:
    """(topic, payload) of one hostile message."""
    ev = f"tc/v1/{HOSTILE_DEVICE}/ev"
    return st.one_of(
        st.tuples(st.just(ev), cose_messages()),
        st.tuples(st.just(ev), device_batches()),
        st.tuples(st.just(ev), any_cbor()),
        st.tuples(st.just(f"tc/v1/{HOSTILE_DEVICE}/status"), status_payloads()),
        st.tuples(st.just(f"tc/v1/pos/{TERMINAL}/ticket"), ticket_payloads()),
        st.tuples(st.just(f"tc/v1/{HOSTILE_DEVICE}/res"), answer_payloads()),
        st.tuples(st.sampled_from([f"tc/v1/{GOOD_DEVICE}/ev", "tc/v1/nobody/ev", "tc/v1/nobody/status",
                                   "tc/v1/pos/T-OTHER/ticket", f"tc/v1/{GOOD_DEVICE}/res"]),
                  any_cbor() | cose_messages()),
    )


def mutants(pool: list[tuple[str, bytes]], count: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """`count` cheap variations of hypothesis-drawn messages: cut, a bit flipped, bytes inserted, spliced with
    another message; a hostile signed event gets a field replaced and is signed again, so it still passes the
    MAC and reaches the schema, the seq window and the commit. Hypothesis draws a few hundred messages a second;
    this makes the 1e6-message soak take minutes, not hours."""
    made = []
    for _ in range(count):
        topic, payload = rng.choice(pool)
        how = rng.randrange(5)
        data = bytearray(payload)
        if how == 0 and data:
            del data[rng.randrange(len(data)):]
        elif how == 1 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif how == 2:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randint(1, 9))
        elif how == 3:
            other = rng.choice(pool)[1]
            data = bytearray(payload[:rng.randrange(len(payload) + 1)] + other[rng.randrange(len(other) + 1):])
        else:
            data = bytearray(_resigned(payload, rng) or payload)
        made.append((topic, bytes(data)))
    return made


def _resigned(payload: bytes, rng: random.Random) -> bytes | None:
    """The hostile device's event inside `payload` with one field replaced, signed again; None if there is none."""
    try:
        mac = cbor2.loads(payload)
        fields = cbor2.loads(mac.value[2])
        fields[rng.choice(sorted(fields, key=repr))] = rng.choice(_JUNK)
        return mac0(cbor2.dumps(fields))
    except Exception:  # not a COSE_Mac0 around an event map: the caller uses the message as it is
        return None


EV = f"tc/v1/{HOSTILE_DEVICE}/ev"
STATUS = f"tc/v1/{HOSTILE_DEVICE}/status"
TICKET = f"tc/v1/pos/{TERMINAL}/ticket"
RES = f"tc/v1/{HOSTILE_DEVICE}/res"


def _signed_event(changes: dict[int, Any]) -> bytes:
    fields = _good_fields(HOSTILE_DEVICE, 1)
    fields.update(changes)
    return mac0(cbor2.dumps(fields))


def _ticket(**changes: Any) -> bytes:
    ticket = {"number": "N1", "terminal": TERMINAL, "time": "2026-01-01T10:00:00+08:00",
              "lines": [{"list_code": "X01", "quantity": 1}], **changes}
    return json.dumps(ticket).encode()


POISON: list[tuple[str, str, bytes, str]] = [
    ("an empty message (SQLite keeps a NULL where its first bytes are read)", EV, b"", "malformed_cbor"),
    ("an empty ticket", TICKET, b"", "ticket_invalid"),
    ("tag 100 holding 2^64-1", EV, bytes.fromhex("d8641bffffffffffffffff"), "malformed_cbor"),
    ("tag 4 with a huge exponent", EV, cbor2.dumps(cbor2.CBORTag(4, [2**70, 1])), "malformed_cbor"),
    ("tag 5 bigfloat", EV, cbor2.dumps(cbor2.CBORTag(5, [2**64, 2**64])), "malformed_cbor"),
    ("UUID tag of 5 bytes", EV, cbor2.dumps(cbor2.CBORTag(37, b"short")), "malformed_cbor"),
    ("a batch of a tag 100 in an array", EV, b"\x81" + bytes.fromhex("d8641bffffffffffffffff"), "malformed_cbor"),
    ("signed, with a decimal fraction as time", EV, _signed_event({4: cbor2.CBORTag(4, [-2, 12345])}), "schema"),
    ("signed, seq 2^63-1", EV, _signed_event({2: 2**63 - 1}), "seq_out_of_window"),
    ("signed, seq just beyond the window", EV, _signed_event({2: 100_002}), "seq_out_of_window"),
    ("signed, NUL in the code", EV, _signed_event({11: "81234\x00"}), "schema"),
    ("signed, time in the year 292 million", EV, _signed_event({4: 2**63 - 1}), "schema"),
    ("signed, seq of 100 bits", EV, _signed_event({2: 2**100}), "schema"),
    ("status holding 2^64", STATUS, cbor2.dumps({0: 1, 1: True, 8: 2**64}), "status_malformed"),
    ("status with tag 100", STATUS, bytes.fromhex("a3000101f508d8641bffffffffffffffff"), "status_malformed"),
    ("status: last seq far ahead", STATUS, cbor2.dumps({0: 1, 1: True, 8: 2**62}), "seq_out_of_window"),
    ("answer with a result of 2^64", RES, mac0(cbor2.dumps({0: 1, 1: 1, 2: 2, 3: 2**64, 4: 1})), "answer_malformed"),
    ("answer with tag 100 as value", RES, mac0(bytes.fromhex("a60001010102010300040105d8641bffffffffffffffff")),
     "answer_malformed"),
    ("answer with a command id of 2^63", RES, mac0(cbor2.dumps({0: 1, 1: 2**63, 2: 2, 3: 0, 4: 1})),
     "answer_malformed"),
    ("ticket nested 30,000 deep", TICKET, b"[" * 30_000 + b"]" * 30_000, "ticket_invalid"),
    ("ticket time 10^30", TICKET, _ticket(time=10**30), "ticket_invalid"),
    ("ticket time 1e30", TICKET, _ticket(time=1e30), "ticket_invalid"),
    ("ticket not UTF-8", TICKET, b"\xff\xfe{}", "ticket_invalid"),
    ("ticket number with NUL (PostgreSQL's text cannot hold it)", TICKET, _ticket(number="a\u0000b"), "ticket_invalid"),
    ("ticket with a lone surrogate", TICKET, _ticket(number="N\ud800"), "ticket_invalid"),
    ("ticket line with a lone surrogate", TICKET, _ticket(lines=[{"list_code": "\udfff", "quantity": 1}]),
     "ticket_invalid"),
]
"""(what, topic, payload, reason): the messages an attack found to stop all ingest, each with the quarantine
reason it must get. Part of every hostile stream."""


def good_event(key: bytes, seq: int) -> bytes:
    return mac0(event.encode(GOOD_DEVICE, seq, 1, 1767225600000 + seq, seq, 1, 1,
                             codes.decode(f"8765432{seq:013d}".encode()), "", 0), kid=GOOD_DEVICE.encode(), key=key)


def register(store: Store, good_key: bytes) -> None:
    """The good device and the hostile one, at one terminal."""
    for name, key in ((GOOD_DEVICE, good_key), (HOSTILE_DEVICE, HOSTILE_KEY)):
        store.add_device(Device(device=name, key=key, terminal=TERMINAL, institution="H00000000001"))


@dataclass
class FuzzCounts:
    """What a fuzz run counted: messages and batches sent, the good device's events stored, refusals and passes,
    and the escapes (an exception or a hang out of the ingest path) in words."""

    messages: int = 0
    batches: int = 0
    good_stored: int = 0
    """The good device's events stored: one per batch when nothing hostile got in its way."""
    reasons: Counter[str] = field(default_factory=Counter)
    """Refusals by reason."""
    passed: Counter[str] = field(default_factory=Counter)
    """What passed verification, by kind (event, status, ticket), good events included."""
    escapes: list[str] = field(default_factory=list)


class AdmissionFuzzer:
    """Batches of hostile messages, each with one good event, through Admission on a real store."""

    def __init__(self, store: Store, *, quarantine_rows: int = 2000) -> None:
        self.store = store
        self.good_key = os.urandom(32)
        register(store, self.good_key)
        settings = IngestSettings(quarantine_max_rows=quarantine_rows, quarantine_max_bytes=8 * 1024 * 1024)
        self.admission = Admission(settings, store, Rules(), Metrics(store))
        self.counts = FuzzCounts()
        self._good_seq = 0
        self._mid = 0
        self._random = random.Random(1)

    def run(self, hostile: list[tuple[str, bytes]]) -> None:
        self._good_seq += 1
        batch = [self._message(topic, payload) for topic, payload in hostile]
        batch.insert(self._random.randint(0, len(batch)), self._message(f"tc/v1/{GOOD_DEVICE}/ev",
                                                                        good_event(self.good_key, self._good_seq)))
        acked: set[int] = set()
        try:
            sorted_batch = self.admission.sort(batch)
            for item in sorted_batch:
                self.counts.passed.update(event=len(item.accepted), status=len(item.statuses),
                                         ticket=len(item.tickets), answer=len(item.answers))
                for refusal in item.rejected:
                    self.counts.reasons[refusal.reason or "NO REASON"] += 1
                    if not refusal.reason:
                        self._escape("refused without a reason", item.message)
            self.admission.commit(sorted_batch, lambda publishes, acks: acked.update(mid for mid, _ in acks))
        except Exception as error:
            self._escape(f"{type(error).__name__}: {error}", *batch)
            return
        finally:
            self.counts.messages += len(batch)
            self.counts.batches += 1
        for message in batch:
            if message.mid not in acked:
                self._escape("not acknowledged", message)
        if self.store.query("SELECT 1 FROM events WHERE device = ? AND seq = ?", (GOOD_DEVICE, self._good_seq)):
            self.counts.good_stored += 1
        else:
            self._escape(f"good event {self._good_seq} not stored")

    def _message(self, topic: str, payload: bytes) -> Message:
        self._mid += 1
        return Message(self._mid, 1, topic, payload, time.time_ns() // 1_000_000)

    def _escape(self, what: str, *messages: Message) -> None:
        shown = "; ".join(f"{message.topic} {message.payload[:300].hex()}" for message in messages[:3])
        self.counts.escapes.append(f"{what}: {shown}")


def draw_messages(count: int, *, seed: int) -> list[tuple[str, bytes]]:
    """`count` hostile (topic, payload) pairs drawn by hypothesis."""
    drawn: list[tuple[str, bytes]] = []

    @seeded(seed)
    @settings(max_examples=count // 20 + 1, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(messages(), min_size=20, max_size=20))
    def collect(hostile: list[tuple[str, bytes]]) -> None:
        drawn.extend(hostile)

    collect()
    return drawn[:count]


def hostile_stream(count: int, *, seed: int, mutants_each: int = 9) -> list[tuple[str, bytes]]:
    """`count` hostile messages: one in 1 + mutants_each drawn by hypothesis, the others its mutants."""
    pool = draw_messages(max(1, count // (1 + mutants_each) - len(POISON)), seed=seed)
    pool += [(topic, payload) for _, topic, payload, _ in POISON]
    stream = pool + mutants(pool, count - len(pool), random.Random(seed))
    random.Random(seed).shuffle(stream)
    return stream


def fuzz(fuzzer: AdmissionFuzzer, count: int, *, seed: int, max_batch: int = 40) -> FuzzCounts:
    """`count` hostile messages through the fuzzer, in batches of 1 to max_batch."""
    rng = random.Random(seed)
    stream = hostile_stream(count, seed=seed)
    while stream:
        size = rng.randint(1, max_batch)
        fuzzer.run(stream[:size])
        del stream[:size]
    return fuzzer.counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soaks.fuzz_ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="hostile messages to send (default 1e6)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--database", help="a postgresql:// URL or a SQLite file (default: a temporary SQLite file)")
    options = parser.parse_args(argv)
    logging.getLogger("gateway").setLevel(logging.CRITICAL)  # every refusal is counted here instead
    print(f"cores: {os.cpu_count()}; seed {options.seed}; {options.messages} hostile messages, in batches of "
          f"1-40 with one good event each, through Admission on {options.database or 'SQLite'}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        store = (open_store(options.database) if options.database
                 else SQLiteStore(Path(scratch) / "fuzz.sqlite3", durable=False))
        fuzzer = AdmissionFuzzer(store)
        started = time.monotonic()

        round_seed = options.seed
        while fuzzer.counts.messages < options.messages:
            fuzz(fuzzer, min(20_000, options.messages - fuzzer.counts.messages), seed=round_seed)
            round_seed += 1
            elapsed = time.monotonic() - started
            print(f"  {fuzzer.counts.messages:>9} messages, {fuzzer.counts.batches} batches, "
                  f"{len(fuzzer.counts.escapes)} escapes, {fuzzer.counts.messages / elapsed:,.0f}/s", flush=True)
        elapsed = time.monotonic() - started
        store.close()
    counts = fuzzer.counts
    print(f"messages {counts.messages}, batches {counts.batches}, good events stored {counts.good_stored} of "
          f"{counts.batches}, {elapsed:.0f} s ({counts.messages / elapsed:,.0f} messages/s)")
    print("passed verification: " + ", ".join(f"{kind} {count}" for kind, count in counts.passed.items()))
    refused = Counter({key.removeprefix("rejected_"): count for key, count in fuzzer.admission.counts.items()
                       if key.startswith("rejected_")})
    print("refusals by reason (quarantined): " + ", ".join(f"{reason} {count}"
                                                           for reason, count in refused.most_common()))
    print(f"escapes: {len(counts.escapes)}")
    for escape in counts.escapes[:20]:
        print("  " + escape)
    return 1 if counts.escapes else 0


if __name__ == "__main__":
    sys.exit(main())
