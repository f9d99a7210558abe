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

_TEXT_HEAD = const(0x60)  # major type 3 with a length below 24
_BYTES_HEAD = const(0x40)  # major type 2 likewise
_MAP_HEAD = const(0xA0)  # major type 5 likewise


def _uint(out, value):
    if value < 24:
        out.append(value)
    else:
        cbor.write_head(out, 0, value)


def _text(out, key, value):
    """Key and text field from ASCII bytes; nothing when empty."""
    if value:
        out.append(key)  # every key is below 24: its head is the key itself
        if len(value) < 24:
            out.append(_TEXT_HEAD | len(value))
        else:
            cbor.write_head(out, 3, len(value))
        out.extend(value)


_device_field = ["", b""]  # device id and its encoded field, kept: a device signs with one id


def _device(device):
    """The encoded `1: device` field (`device` a str), computed once per device id."""
    if device != _device_field[0]:
        field = bytearray()
        _text(field, K_DEVICE, device.encode())
        _device_field[0] = device
        _device_field[1] = bytes(field)
    return _device_field[1]


def encode(device, seq, boot, time_ms, uptime_ms, clock, op, scan, ticket="", split_qty=0):
    """Return the event's CBOR bytes; empty optional fields are left out. `device` and `ticket` are str.

    Heads are written inline where they fit in one byte (every key, most values): on a microcontroller
    each call costs more than the byte it writes.
    """
    count = 11  # the fields every event carries
    for value in (scan.aim, scan.code, scan.pid, scan.serial, scan.lot, scan.expiry, scan.made, ticket, split_qty):
        if value:
            count += 1
    out = bytearray()
    append = out.append
    append(_MAP_HEAD | count)  # at most 20 fields
    append(K_VERSION)
    append(SCHEMA_VERSION)
    out.extend(_device(device))
    append(K_SEQ)
    _uint(out, seq)
    append(K_BOOT)
    _uint(out, boot)
    append(K_TIME)
    _uint(out, time_ms)
    append(K_UPTIME)
    _uint(out, uptime_ms)
    append(K_CLOCK)
    _uint(out, clock)
    append(K_OP)
    _uint(out, op)
    append(K_RAW)
    if len(scan.raw) < 24:
        append(_BYTES_HEAD | len(scan.raw))
    else:
        cbor.write_head(out, 2, len(scan.raw))
    out.extend(scan.raw)
    _text(out, K_AIM, scan.aim)
    append(K_KIND)
    _uint(out, scan.kind)
    _text(out, K_CODE, scan.code)
    _text(out, K_PID, scan.pid)
    _text(out, K_SERIAL, scan.serial)
    _text(out, K_LOT, scan.lot)
    _text(out, K_EXPIRY, scan.expiry)
    append(K_ERR)
    _uint(out, scan.err)
    _text(out, K_MADE, scan.made)
    if ticket:
        _text(out, K_TICKET, ticket.encode())
    if split_qty:
        append(K_SPLIT_QTY)
        _uint(out, split_qty)
    return bytes(out)
