"""An ev payload split into its messages, each as its exact bytes, or refused with the splitter's own reasons."""

import cbor2
import pytest

from gateway.wire.messages import MAX_BATCH_ITEMS, split_messages
from gateway.wire.protocol import ProtocolError


def test_one_message_or_an_array_of_them_each_as_its_exact_bytes():
    one = cbor2.dumps(cbor2.CBORTag(17, [b"\xa1\x01\x05", {}, b"x", b"m" * 8]))
    assert split_messages(one) == [one]
    assert split_messages(b"\x82" + one + one) == [one, one]
    with pytest.raises(ProtocolError, match="oversized"):
        split_messages(bytes([0x98, MAX_BATCH_ITEMS + 1]) + one * (MAX_BATCH_ITEMS + 1))
    with pytest.raises(ProtocolError, match="trailing bytes"):
        split_messages(b"\x81" + one + b"\x00")


def test_the_batch_splitter_keeps_its_own_reasons():
    with pytest.raises(ProtocolError, match="oversized"):
        split_messages(bytes([0x98, 65]) + b"\x00" * 65)
    with pytest.raises(ProtocolError, match="malformed_cbor"):
        split_messages(b"\x81" + bytes.fromhex("d8641bffffffffffffffff"))
