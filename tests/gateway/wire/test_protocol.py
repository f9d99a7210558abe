"""Gateway side of the wire contract: it verifies and reads the firmware's vector, and refuses the rest."""

import json
from pathlib import Path

import cbor2
import pytest

from gateway.wire.protocol import Event, Operation, ProtocolError, Signed, Verdict, encode_ack, parse_event, verify_mac0

ROOT = Path(__file__).resolve().parents[3]
VECTOR = json.loads((ROOT / "tests" / "vectors" / "protocol_v1.json").read_text(encoding="utf-8"))
KEY = bytes.fromhex(VECTOR["key_hex"])
MESSAGE = bytes.fromhex(VECTOR["mac0_hex"])


def keys(device):
    return KEY if device == "dev-0001" else None


def test_vector_verifies_and_parses():
    signed = verify_mac0(MESSAGE, keys, topic_device="dev-0001")
    assert signed.payload.hex() == VECTOR["event_hex"]
    event = parse_event(signed)
    assert event == Event(
        device="dev-0001", seq=42, boot=3, time_ms=1767225600123, uptime_ms=98765, clock=1, op=Operation.SALE,
        raw=b"]d2010690123456789217261200102AB\x1d21XYZ123", aim="]d2", kind=2,
        code="010690123456789217261200102AB\x1d21XYZ123", pid="06901234567892", serial="XYZ123", lot="2AB",
        expiry="261200", err=0, ticket="T20260101-0007", split_qty=2,
    )


def test_ack_vector():
    assert encode_ack(41, [(42, Verdict.DUPLICATE_SALE)]).hex() == VECTOR["ack_hex"]


def test_answer_vector():
    from gateway.wire.commands import Result, parse_answer

    answer = parse_answer(verify_mac0(bytes.fromhex(VECTOR["answer_mac0_hex"]), keys, topic_device="dev-0001"))
    assert (answer.device, answer.command_id, answer.kind, answer.result, answer.last_id, answer.value) == (
        "dev-0001", 7, 1, Result.APPLIED, 7, 1767225600000)


def test_protocol_doc_carries_the_vector():
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for name in ("key_hex", "event_hex", "mac0_hex", "ack_hex", "command_mac0_hex", "status_hex", "answer_mac0_hex"):
        assert VECTOR[name] in doc.replace("\n", "").replace(" ", ""), name


def _tampered(index):
    changed = bytearray(MESSAGE)
    changed[index] ^= 1
    return bytes(changed)


@pytest.mark.parametrize("message, topic, reason", [
    (_tampered(40), "dev-0001", "bad_mac"),
    (_tampered(len(MESSAGE) - 1), "dev-0001", "bad_mac"),
    (MESSAGE, "dev-0002", "kid_mismatch"),
    (MESSAGE[:-3], "dev-0001", "malformed_cbor"),
    (b"\xff" * 2000, "dev-0001", "oversized"),
    (cbor2.dumps([1, 2]), "dev-0001", "not_mac0"),
    (MESSAGE.replace(bytes.fromhex("43a10105"), bytes.fromhex("43a10106"), 1), "dev-0001", "not_mac0"),
])
def test_refusals_are_categorised(message, topic, reason):
    with pytest.raises(ProtocolError) as error:
        verify_mac0(message, keys, topic_device=topic)
    assert error.value.reason == reason


def test_unknown_device():
    with pytest.raises(ProtocolError) as error:
        verify_mac0(MESSAGE, lambda device: None, topic_device="dev-0001")
    assert error.value.reason == "unknown_device"


def _event(changes):
    fields = cbor2.loads(bytes.fromhex(VECTOR["event_hex"]))
    fields.update(changes)
    return cbor2.dumps({key: value for key, value in fields.items() if value is not None})


@pytest.mark.parametrize("payload, words", [
    (_event({99: 1}), "unknown event key"),
    (cbor2.dumps({99: 1}), "unknown event key"),
    (_event({2: None}), "lacks seq"),
    (_event({0: 2}), "version"),
    (_event({7: 9}), "op must be"),
    (_event({2: 0}), "start at 1"),
    (_event({1: "dev/0001"}), "device id"),
    (_event({18: "T" * 41}), "ticket"),
    (_event({8: "text"}), "raw"),
    (_event({2: True}), "seq must be"),
    (cbor2.dumps([1]), "must be a map"),
    (b"\xa1", "malformed"),
])
def test_schema_violations(payload, words):
    with pytest.raises(ProtocolError, match=words):
        parse_event(Signed(kid="dev-0001", payload=payload))


def test_event_of_another_device_than_the_signer():
    with pytest.raises(ProtocolError) as error:
        parse_event(Signed(kid="dev-0002", payload=bytes.fromhex(VECTOR["event_hex"])))
    assert error.value.reason == "kid_mismatch"


def test_ack_carries_at_most_the_newest_16_verdicts():
    ack = cbor2.loads(encode_ack(800, [(seq, Verdict.OK) for seq in range(1, 801)]))
    assert ack[1] == 800 and [seq for seq, _ in ack[2]] == list(range(785, 801))
