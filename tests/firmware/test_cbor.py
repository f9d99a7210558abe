"""CBOR codec: RFC 8949 vectors, differential round-trips against cbor2, malformed input, limits."""

from collections.abc import Mapping

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcagent.codec.cbor import Tag

from conftest import FirmwareError

# RFC 8949 Appendix A, the part inside our profile: (value, encoding)
RFC_VECTORS = [
    (0, "00"), (23, "17"), (24, "1818"), (100, "1864"), (1000, "1903e8"), (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"), (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"), (-1, "20"), (-10, "29"), (-100, "3863"), (-1000, "3903e7"),
    (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"), ("", "60"), ("a", "6161"), ("IETF", "6449455446"),
    ('"\\', "62225c"), ("\u00fc", "62c3bc"), ("\u6c34", "63e6b0b4"), ([], "80"), ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"), ({1: 2, 3: 4}, "a201020304"), ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"), (False, "f4"), (True, "f5"), (None, "f6"),
    (Tag(1, 1363896240), "c11a514b67b0"), (Tag(24, b"\x64IETF"), "d818456449455446"),
    (Tag(32, "http://www.example.com"), "d82076687474703a2f2f7777772e6578616d706c652e636f6d"),
]
RFC_INDEFINITE = [
    (b"\x01\x02\x03\x04\x05", "5f42010243030405ff"), ("streaming", "7f657374726561646d696e67ff"),
    ([], "9fff"), ([1, [2, 3], [4, 5]], "9f018202039f0405ffff"), ([1, [2, 3], [4, 5]], "83018202039f0405ff"),
    ({"a": 1, "b": [2, 3]}, "bf61610161629f0203ffff"), (["a", {"b": "c"}], "826161bf61626163ff"),
    ({"Fun": True, "Amt": -2}, "bf6346756ef563416d7421ff"),
]
# RFC 8949 Appendix F and friends: not well-formed, cbor2 must agree (checked below)
MALFORMED = [
    "18", "1901", "1a010203", "1b01020304050607", "38", "58", "78", "98", "9a01ff00", "b8", "d8", "f9", "fa0000",
    "fb000000", "41", "61", "5affffffff00", "5bffffffffffffffff010203", "7affffffff00", "81", "818181818181818181",
    "8200", "a1", "a20102", "a100", "a2000000", "c0", "5f4100", "7f6100", "9f", "9f0102", "bf", "bf01020102",
    "819f", "9f8000", "9f9f9f9f9fffffffff", "9f819f819f9fffffff",
    "1c", "1d", "1e", "3c", "3d", "3e", "5c", "5d", "5e", "7c", "7d", "7e", "9c", "9d", "9e", "bc", "bd", "be",
    "dc", "dd", "de", "fc", "fd", "fe", "1f", "3f", "df",
    "5f00ff", "5f21ff", "5f6100ff", "5f80ff", "5fa0ff", "5fc000ff", "5fe0ff", "7f4100ff",
    "5f5f4100ffff", "7f7f6100ffff",
    "a1ff", "a20000ff", "9f81ff", "9f829f819f9fffffffff",
    "62c328", "61ff", "7f61ffff",
]

# Also not well-formed (a break where an item must be), but cbor2 5.x returns its break_marker for them.
MALFORMED_CBOR2_ACCEPTS = ["ff", "81ff", "8200ff", "a1ff00", "a100ff"]

tags = st.sampled_from([6, 7, 17, 18, 61, 98, 1000, 40000, 2**32, 2**64 - 1])
keys = st.integers(-(2**64), 2**64 - 1) | st.text(max_size=12) | st.binary(max_size=12)
leaves = (
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=40)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=24)
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(keys, children, max_size=5)
    | st.builds(cbor2.CBORTag, tags, children),
    max_leaves=24,
)


def to_firmware(value):
    """cbor2's CBORTag to the firmware's Tag, recursively."""
    if isinstance(value, cbor2.CBORTag):
        return Tag(value.tag, to_firmware(value.value))
    if isinstance(value, list):
        return [to_firmware(item) for item in value]
    if isinstance(value, dict):
        return {key: to_firmware(item) for key, item in value.items()}
    return value


def lists(value):
    """cbor2 decodes arrays inside tags and keys as tuples; compare them as lists."""
    if isinstance(value, (list, tuple)):
        return [lists(item) for item in value]
    if isinstance(value, Mapping):  # cbor2 gives a frozendict inside tags
        return {key: lists(item) for key, item in value.items()}
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, lists(value.value))
    return value


def deterministic_reference(value):
    """RFC 8949 4.2.1 encoding built from cbor2's leaf encodings, sorting map keys bytewise."""
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(deterministic_reference(v) for v in value)
    if isinstance(value, dict):
        entries = sorted((deterministic_reference(k), deterministic_reference(v)) for k, v in value.items())
        return _head(5, len(entries)) + b"".join(k + v for k, v in entries)
    if isinstance(value, cbor2.CBORTag):
        return _head(6, value.tag) + deterministic_reference(value.value)
    return cbor2.dumps(value)


def _head(major, length):
    encoded = bytearray(cbor2.dumps(length))  # shortest unsigned head, then set the major type
    encoded[0] |= major << 5
    return bytes(encoded)


@pytest.mark.parametrize("value, encoded", RFC_VECTORS, ids=[v[1] for v in RFC_VECTORS])
def test_rfc_vector(fw, value, encoded):
    assert fw.call("cbor_dumps", value).hex() == encoded
    assert fw.call("cbor_loads", bytes.fromhex(encoded)) == value


@pytest.mark.parametrize("value, encoded", RFC_INDEFINITE, ids=[v[1] for v in RFC_INDEFINITE])
def test_indefinite_only_when_allowed(fw, value, encoded):
    data = bytes.fromhex(encoded)
    assert fw.call("cbor_loads", data, indefinite=True) == value
    with pytest.raises(FirmwareError, match="indefinite"):
        fw.call("cbor_loads", data)


@pytest.mark.parametrize("encoded", MALFORMED)
def test_malformed_rejected_by_both(fw, encoded):
    data = bytes.fromhex(encoded)
    with pytest.raises(Exception):  # noqa: B017  (any cbor2 error: it is the witness, not the subject)
        cbor2.loads(data)
    with pytest.raises(FirmwareError) as error:
        fw.call("cbor_loads", data, indefinite=True)
    assert error.value.name == "CBORError"


@pytest.mark.parametrize("encoded", MALFORMED_CBOR2_ACCEPTS)
def test_stray_break_rejected(fw, encoded):
    with pytest.raises(FirmwareError, match="break outside"):
        fw.call("cbor_loads", bytes.fromhex(encoded), indefinite=True)


@settings(max_examples=150)
@given(value=values)
def test_firmware_encoding_decodes_in_cbor2_and_is_deterministic(fw, value):
    encoded = fw.call("cbor_dumps", to_firmware(value))
    assert lists(cbor2.loads(encoded)) == value
    assert encoded == deterministic_reference(value)
    assert fw.call("cbor_loads", encoded, deterministic=True) == to_firmware(value)


@settings(max_examples=150)
@given(value=values)
def test_cbor2_encoding_decodes_in_firmware(fw, value):
    assert fw.call("cbor_loads", cbor2.dumps(value)) == to_firmware(value)


@pytest.mark.parametrize("encoded, reason", [
    ("1800", "non-shortest"), ("190017", "non-shortest"), ("a2020001f4", "order"), ("a2616201616100", "order"),
])
def test_deterministic_mode_refuses_other_encodings(fw, encoded, reason):
    data = bytes.fromhex(encoded)
    assert fw.call("cbor_loads", data) is not None
    with pytest.raises(FirmwareError, match=reason):
        fw.call("cbor_loads", data, deterministic=True)


@pytest.mark.parametrize("encoded, reason", [
    ("a201000100", "duplicate map key"),
    ("a18000", "array, map or tag"),
    ("f93c00", "float"),
    ("f7", "simple value"),
    ("f820", "simple value"),
    ("0102", "trailing"),
    ("5bffffffffffffffff", "truncated"),
    ("9b00000000ffffffff00", "truncated"),
    ("bb00000000ffffffff", "truncated"),
])
def test_outside_profile_or_bounds(fw, encoded, reason):
    with pytest.raises(FirmwareError, match=reason):
        fw.call("cbor_loads", bytes.fromhex(encoded))


def test_depth_limit(fw):
    nested = bytes.fromhex("81" * 17 + "00")
    assert fw.call("cbor_loads", nested, max_depth=17) is not None
    with pytest.raises(FirmwareError, match="nesting deeper"):
        fw.call("cbor_loads", nested, max_depth=16)


def test_size_limit(fw):
    data = cbor2.dumps(b"x" * 100)
    assert fw.call("cbor_loads", data, max_size=102) == b"x" * 100
    with pytest.raises(FirmwareError, match="oversized"):
        fw.call("cbor_loads", data, max_size=101)


@pytest.mark.parametrize("value, reason", [(2**64, "64 bits"), (-(2**64) - 1, "64 bits"), (1.5, "outside the profile")])
def test_encoder_refuses_values_outside_profile(fw, value, reason):
    with pytest.raises(FirmwareError, match=reason):
        fw.call("cbor_dumps", value)
