"""COSE_Mac0: the firmware's messages checked by pycose and cwt, theirs by the firmware, tampering refused."""

import hashlib
import hmac

import cbor2
import pytest
from cwt import COSE, COSEKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.headers import KID, Algorithm
from pycose.keys import SymmetricKey
from pycose.messages import CoseMessage, Mac0Message

from conftest import FirmwareError

KEY = bytes(range(32))
KID_BYTES = b"dev-0001"
keys = st.binary(min_size=32, max_size=32)
payloads = st.binary(max_size=600)
kids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=24).map(str.encode)


def pycose_verify(key, message):
    decoded = CoseMessage.decode(message)
    decoded.key = SymmetricKey(k=key)
    return decoded.verify_tag()


def pycose_sign(key, payload, kid):
    message = Mac0Message(phdr={Algorithm: "HMAC_256"}, uhdr={KID: kid}, payload=payload)
    message.key = SymmetricKey(k=key)
    return message.encode()


def cwt_context():
    return COSE.new(alg_auto_inclusion=True, kid_auto_inclusion=True)


@settings(max_examples=60)
@given(key=keys, payload=payloads, kid=kids)
def test_firmware_message_verifies_in_pycose_and_cwt(fw, key, payload, kid):
    message = fw.call("mac0_sign", key, payload, kid)
    assert pycose_verify(key, message)
    cwt_key = COSEKey.from_symmetric_key(key, alg="HS256", kid=kid)
    assert cwt_context().decode(message, cwt_key) == payload
    assert fw.call("mac0_kid", message) == kid


@settings(max_examples=60)
@given(key=keys, payload=payloads, kid=kids)
def test_pycose_and_cwt_messages_verify_in_firmware(fw, key, payload, kid):
    assert fw.call("mac0_verify", key, pycose_sign(key, payload, kid)) == payload
    cwt_message = cwt_context().encode(payload, COSEKey.from_symmetric_key(key, alg="HS256", kid=kid))
    assert fw.call("mac0_verify", key, cwt_message) == payload


def test_firmware_bytes_equal_pycose_bytes(fw):
    assert fw.call("mac0_sign", KEY, b"payload", KID_BYTES) == pycose_sign(KEY, b"payload", KID_BYTES)


def _tamper(message, index):
    changed = bytearray(message)
    changed[index] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize("where", ["payload", "tag", "protected"])
def test_flipped_bit_is_refused_by_all(fw, where):
    message = fw.call("mac0_sign", KEY, b"0123456789", KID_BYTES)
    index = {"payload": message.index(b"0123456789") + 3, "tag": len(message) - 1, "protected": 5}[where]
    tampered = _tamper(message, index)
    with pytest.raises(FirmwareError):
        fw.call("mac0_verify", KEY, tampered)
    with pytest.raises(Exception):  # noqa: B017  (pycose's own exception types vary by failure)
        assert pycose_verify(KEY, tampered)


def test_wrong_key_is_refused(fw):
    message = fw.call("mac0_sign", KEY, b"x", KID_BYTES)
    with pytest.raises(FirmwareError, match="does not verify"):
        fw.call("mac0_verify", bytes(32), message)


def _rebuild(protected=b"\xa1\x01\x05", unprotected=None, payload=b"x", tag=bytes(32), tagged=True):
    parts = [protected, {4: KID_BYTES} if unprotected is None else unprotected, payload, tag]
    return cbor2.dumps(cbor2.CBORTag(17, parts) if tagged else parts)


@pytest.mark.parametrize("message, reason", [
    (_rebuild(tagged=False), "tag 17"),
    (cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"x", bytes(32)])), "tag 17"),
    (_rebuild(protected=b"\xa1\x01\x06"), "alg 5"),
    (_rebuild(protected=b"\xa2\x01\x05\x02\x81\x01"), "critical"),
    (_rebuild(protected=b"\xa1\x01"), "malformed protected"),
    (_rebuild(unprotected={}), "kid"),
    (_rebuild(unprotected={1: 5, 4: KID_BYTES}), "alg must be protected"),
    (_rebuild(payload=None), "attached"),
    (_rebuild(tag=bytes(31)), "32 bytes"),
    (bytes.fromhex("d18443a10105a1"), "malformed CBOR"),
    (b"", "malformed CBOR"),
])
def test_messages_outside_the_profile(fw, message, reason):
    with pytest.raises(FirmwareError, match=reason) as error:
        fw.call("mac0_verify", KEY, message)
    assert error.value.name == "CoseError"


def test_short_keys_refused(fw):
    with pytest.raises(FirmwareError, match="too short"):
        fw.call("mac0_sign", b"short", b"x", KID_BYTES)


def test_long_keys_hashed_as_rfc_2104_says(fw):
    long_key = bytes(range(100))  # pycose takes only 16/24/32-byte keys: the stdlib's hmac is the witness
    message = cbor2.loads(fw.call("mac0_sign", long_key, b"x", KID_BYTES))
    mac_structure = cbor2.dumps(["MAC0", b"\xa1\x01\x05", b"", b"x"])
    assert message.value[3] == hmac.new(long_key, mac_structure, hashlib.sha256).digest()
