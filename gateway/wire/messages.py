"""An `ev` payload as the messages it holds: one COSE_Mac0, or a CBOR array of up to 64 of them."""

from __future__ import annotations

import io

import cbor2

from gateway.wire.protocol import MAX_BATCH_BYTES, ProtocolError, shown

__all__ = ["split_messages", "MAX_BATCH_ITEMS"]

MAX_BATCH_ITEMS = 64
"""Messages in one batch payload at most; more is refused as `oversized`."""


def split_messages(payload: bytes) -> list[bytes]:
    """The COSE_Mac0 messages in an ev payload (one, or a CBOR array of them), each as its exact bytes."""
    if not payload or payload[0] >> 5 != 4:
        return [payload]
    if len(payload) > MAX_BATCH_BYTES:
        raise ProtocolError("oversized", f"batch of {len(payload)} bytes, limit {MAX_BATCH_BYTES}")
    stream = io.BytesIO(payload)
    try:
        head = cbor2.CBORDecoder(stream)
        info = payload[0] & 0x1F
        if info < 24:
            count = info
            stream.seek(1)
        elif info == 24 and len(payload) > 1:
            count = payload[1]
            stream.seek(2)
        else:
            raise ProtocolError("malformed_cbor", "batch array head is not a definite count below 256")
        if count > MAX_BATCH_ITEMS:
            raise ProtocolError("oversized", f"batch of {count} messages, limit {MAX_BATCH_ITEMS}")
        items = []
        for _ in range(count):
            start = stream.tell()
            head.decode()
            items.append(payload[start : stream.tell()])
    except ProtocolError:
        raise
    except Exception as error:  # cbor2 raises more than its own errors on crafted input
        raise ProtocolError("malformed_cbor", f"batch: {type(error).__name__}: {shown(error)}") from None
    if stream.tell() != len(payload):
        raise ProtocolError("malformed_cbor", "trailing bytes after the batch")
    return items
