"""The scan event: its CBOR keys (docs/protocol.md) and its encoding.

Keys are written in ascending order with shortest heads, so the bytes are
the RFC 8949 deterministic encoding without building and sorting a map.
"""

from tcagent import cbor
from tcagent.compat import const

SCHEMA_VERSION = const(1)

K_VERSION = const(0)
K_DEVICE = const(1)
K_SEQ = const(2)
K_BOOT = const(3)
K_TIME = const(4)  # ms since the Unix epoch, 0 while the clock is unsynced
K_UPTIME = const(5)  # ms since boot
K_CLOCK = const(6)
K_OP = const(7)
K_RAW = const(8)
K_AIM = const(9)
K_KIND = const(10)
K_CODE = const(11)
K_PID = const(12)
K_SERIAL = const(13)
K_LOT = const(14)
K_EXPIRY = const(15)
K_ERR = const(16)
K_MADE = const(17)
K_TICKET = const(18)
K_SPLIT_QTY = const(19)

CLOCK_UNSYNCED = const(0)
CLOCK_NTP = const(1)
CLOCK_GATEWAY = const(2)

OP_SALE = const(1)
OP_SALE_RETURN = const(2)
OP_PURCHASE = const(3)
OP_PURCHASE_RETURN = const(4)
OP_STOCKTAKE = const(5)
OP_DISPENSE = const(6)
OP_ADJUST = const(7)
OP_NAMES = ("", "sale", "sale_return", "purchase", "purchase_return", "stocktake", "dispense", "adjust")

_UINT = const(0)
_BYTES = const(2)
_TEXT = const(3)
_MAP = const(5)


def _uint(out, key, value):
    cbor.write_head(out, _UINT, key)
    cbor.write_head(out, _UINT, value)


def _text(out, key, value):
    if value:
        data = value.encode()
        cbor.write_head(out, _UINT, key)
        cbor.write_head(out, _TEXT, len(data))
        out.extend(data)


def encode(device, seq, boot, time_ms, uptime_ms, clock, op, scan, ticket="", split_qty=0):
    """Return the event's CBOR bytes; empty optional fields are left out."""
    count = 11  # the fields every event carries
    for value in (scan.aim, scan.code, scan.pid, scan.serial, scan.lot, scan.expiry, scan.made, ticket, split_qty):
        if value:
            count += 1
    out = bytearray()
    cbor.write_head(out, _MAP, count)
    _uint(out, K_VERSION, SCHEMA_VERSION)
    _text(out, K_DEVICE, device)
    _uint(out, K_SEQ, seq)
    _uint(out, K_BOOT, boot)
    _uint(out, K_TIME, time_ms)
    _uint(out, K_UPTIME, uptime_ms)
    _uint(out, K_CLOCK, clock)
    _uint(out, K_OP, op)
    cbor.write_head(out, _UINT, K_RAW)
    cbor.write_head(out, _BYTES, len(scan.raw))
    out.extend(scan.raw)
    _text(out, K_AIM, scan.aim)
    _uint(out, K_KIND, scan.kind)
    _text(out, K_CODE, scan.code)
    _text(out, K_PID, scan.pid)
    _text(out, K_SERIAL, scan.serial)
    _text(out, K_LOT, scan.lot)
    _text(out, K_EXPIRY, scan.expiry)
    _uint(out, K_ERR, scan.err)
    _text(out, K_MADE, scan.made)
    _text(out, K_TICKET, ticket)
    if split_qty:
        _uint(out, K_SPLIT_QTY, split_qty)
    return bytes(out)
