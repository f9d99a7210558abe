"""The event and its signature: the firmware reproduces the protocol's test vector byte for byte."""

import cbor2
from pycose.keys import SymmetricKey
from pycose.messages import CoseMessage

from conftest import load_vector

VECTOR = load_vector("protocol_v1.json")
KEY = bytes.fromhex(VECTOR["key_hex"])
ARGS = VECTOR["event_args"]


def _event_args():
    return (ARGS["device"], ARGS["seq"], ARGS["boot"], ARGS["time_ms"], ARGS["uptime_ms"], ARGS["clock"], ARGS["op"],
            VECTOR["scan_line"].encode(), ARGS["ticket"], ARGS["split_qty"])


def test_event_bytes_match_the_vector(fw):
    assert fw.call("event_encode", *_event_args()).hex() == VECTOR["event_hex"]


def test_event_is_deterministic_cbor_with_the_documented_fields(fw):
    payload = fw.call("event_encode", *_event_args())
    fields = {int(key): value for key, value in VECTOR["event_fields"].items()}
    fields[8] = bytes.fromhex(fields[8]["$b"])
    assert cbor2.loads(payload) == fields
    assert cbor2.dumps(fields, canonical=True) == payload


def test_signed_event_matches_the_vector_and_verifies_in_pycose(fw):
    message = fw.call("signed_event", KEY, *_event_args())
    assert message.hex() == VECTOR["mac0_hex"]
    decoded = CoseMessage.decode(message)
    decoded.key = SymmetricKey(k=KEY)
    assert decoded.verify_tag()


def test_firmware_reads_the_gateway_command_and_ack(fw):
    command = bytes.fromhex(VECTOR["command_mac0_hex"])
    assert fw.call("mac0_verify", KEY, command).hex() == VECTOR["command_payload_hex"]
    ack = fw.call("cbor_loads", bytes.fromhex(VECTOR["ack_hex"]), deterministic=True)
    assert ack == {0: 1, 1: 41, 2: [[42, 1]]}


def test_command_answer_matches_the_vector_and_verifies_in_pycose(fw):
    fields = {int(key): value for key, value in VECTOR["answer_fields"].items()}
    payload = fw.call("cbor_dumps", fields)
    assert payload.hex() == VECTOR["answer_payload_hex"]
    message = fw.call("mac0_sign", KEY, payload, b"dev-0001")
    assert message.hex() == VECTOR["answer_mac0_hex"]
    decoded = CoseMessage.decode(message)
    decoded.key = SymmetricKey(k=KEY)
    assert decoded.verify_tag()


def test_optional_fields_are_left_out(fw):
    payload = fw.call("event_encode", "d1", 1, 0, 0, 5, 0, 1, b"81234567890123456789")
    assert sorted(cbor2.loads(payload)) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 16]


def test_invalid_scan_is_still_an_event(fw):
    fields = cbor2.loads(fw.call("event_encode", "d1", 2, 0, 0, 5, 0, 1, b"6901234567892"))
    assert fields[16] == 7 and fields[8] == b"6901234567892" and 12 not in fields
