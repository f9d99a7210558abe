"""Garbage in: every firmware entry point answers with its own clear error, never a crash, on both interpreters."""

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from tcagent.codec import reasons

from conftest import FirmwareError

ERROR_NAMES = set(reasons.NAMES)
scanner_bytes = st.binary(max_size=600) | st.text(max_size=200).map(str.encode) | st.lists(
    st.sampled_from([b"]d2", b"01", b"06901234567892", b"17", b"261231", b"10", b"21", b"\x1d", b"(", b")", b"MA.",
                     b".S", b"8", b"0", b"\r\n", b" ", b"\xef\xbc\x91", b"99", b"7003", b"AB"]),
    max_size=30,
).map(b"".join)


@settings(max_examples=300)
@given(line=scanner_bytes)
def test_decode_never_raises(fw, line):
    result = fw.call("scan", line)
    assert result["err_name"] in ERROR_NAMES
    assert (result["err"] == 0) == (result["detail"] == "")
    if result["err"] == 0:
        assert result["kind_name"] in ("digits20", "gs1", "ma") and result["code"] and result["serial"]


cbor_garbage = st.binary(max_size=300) | st.builds(
    lambda value, cut: cbor2.dumps(value)[:cut], st.recursive(
        st.integers() | st.binary(max_size=20) | st.text(max_size=10),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
        max_leaves=12),
    st.integers(0, 200),
)


@settings(max_examples=300)
@given(data=cbor_garbage)
def test_cbor_loads_fails_only_with_cbor_error(fw, data):
    try:
        fw.call("cbor_loads", data, indefinite=True, max_depth=8)
    except FirmwareError as error:
        assert error.name == "CBORError", error


@settings(max_examples=200)
@given(data=cbor_garbage | st.binary(max_size=80).map(lambda tail: bytes.fromhex("d18443a10105a104") + tail))
def test_cose_verify_fails_only_with_cose_error(fw, data):
    try:
        fw.call("mac0_verify", bytes(32), data)
    except FirmwareError as error:
        assert error.name == "CoseError", error
    else:
        raise AssertionError("garbage verified")
