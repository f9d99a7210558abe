"""The scan event: its CBOR keys (docs/protocol.md) and its encoding.

Keys are written in ascending order with shortest heads, so the bytes are
the RFC 8949 deterministic encoding without building and sorting a map.
"""

from tcagent.codec import cbor
from tcagent.codec.compat import const, native

SCHEMA_VERSION = const(1)
RECORD_MAX = const(1280)  # docs/protocol.md: one COSE_Mac0 at most 1,280 bytes
EVENT_MAX = const(1024)  # docs/protocol.md: an event payload at most 1,024 bytes

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
_UINT8_HEAD = const(0x18)  # major type 0 with a 1-byte argument
_UINT16_HEAD = const(0x19)  # ... a 2-byte one
_UINT32_HEAD = const(0x1A)  # ... a 4-byte one
_UINT64_HEAD = const(0x1B)  # ... an 8-byte one
_FIELDS_ALWAYS = const(11)  # the fields every event carries
_ROOM = const(256)  # bytes reserved for the event up front: most events fit, a longer one grows the buffer


def _text_head(out, key, length):
    out.append(key)  # every key is below 24: its head is the key itself
    cbor.write_head(out, 3, length)


def _text(out, key, value):
    """Key and text field from ASCII bytes (not empty)."""
    _text_head(out, key, len(value))
    out += value


_device_field = ["", b""]  # type: list  # device id and its encoded field, kept: a device signs with one id


def _keep_device(device):
    """Encode and keep the `1: device` field (`device` a str): encode() calls this only for a new device id."""
    field = bytearray()
    _text(field, K_DEVICE, device.encode())
    _device_field[0] = device
    _device_field[1] = bytes(field)


@native
def encode(device, seq, boot, time_ms, uptime_ms, clock, op, scan, ticket="", split_qty=0):
    """Return the event's CBOR bytes; empty optional fields are left out. `device` and `ticket` are str.

    Written for an RP2040, where a call costs about 10 µs and a heap allocation 15: heads are written inline
    where they fit in one byte (every key, most values), the scan's fields are read once, and the buffer is
    taken with room for the whole event, so appending never moves it.
    """
    out = bytearray(_ROOM)
    out[:] = b""  # empty, its room kept
    append = out.append
    append(_MAP_HEAD)  # its field count is set at the end
    append(K_VERSION)
    append(SCHEMA_VERSION)
    if device != _device_field[0]:  # a device signs with one id: its field is kept, checked here without a call
        _keep_device(device)
    out += _device_field[1]
    append(K_SEQ)
    if seq < 24:
        append(seq)
    elif seq < 0x10000:  # a counter's seq: its head inline, a call costs more
        if seq < 0x100:
            append(_UINT8_HEAD)
        else:
            append(_UINT16_HEAD)
            append(seq >> 8)
        append(seq & 0xFF)
    else:
        cbor.write_head(out, 0, seq)
    append(K_BOOT)
    if boot < 24:
        append(boot)
    else:
        cbor.write_head(out, 0, boot)
    append(K_TIME)
    if time_ms > 0xFFFFFFFF:  # every synced time since 1970-02-19: the head inline
        append(_UINT64_HEAD)
        out += time_ms.to_bytes(8, "big")
    elif time_ms < 24:
        append(time_ms)
    else:
        cbor.write_head(out, 0, time_ms)
    append(K_UPTIME)
    if uptime_ms < 24:
        append(uptime_ms)
    elif uptime_ms < 0x100:
        append(_UINT8_HEAD)
        append(uptime_ms)
    elif 0xFFFF < uptime_ms <= 0xFFFFFFFF:  # from a minute after boot to 49 days: the head inline
        append(_UINT32_HEAD)
        out += uptime_ms.to_bytes(4, "big")
    else:
        cbor.write_head(out, 0, uptime_ms)
    append(K_CLOCK)
    if clock < 24:
        append(clock)
    else:
        cbor.write_head(out, 0, clock)
    append(K_OP)
    if op < 24:
        append(op)
    else:
        cbor.write_head(out, 0, op)
    raw = scan.raw
    append(K_RAW)
    if len(raw) < 24:
        append(_BYTES_HEAD | len(raw))
    else:
        cbor.write_head(out, 2, len(raw))
    out += raw
    count = _FIELDS_ALWAYS
    value = scan.aim
    if value:
        length = len(value)
        if length < 24:
            append(K_AIM)
            append(_TEXT_HEAD | length)
        else:
            _text_head(out, K_AIM, length)
        out += value
        count += 1
    append(K_KIND)
    kind = scan.kind
    if kind < 24:
        append(kind)
    else:
        cbor.write_head(out, 0, kind)
    value = scan.code
    if value:
        length = len(value)
        if length < 24:
            append(K_CODE)
            append(_TEXT_HEAD | length)
        else:
            _text_head(out, K_CODE, length)
        out += value
        count += 1
    value = scan.pid
    if value:
        length = len(value)
        if length < 24:
            append(K_PID)
            append(_TEXT_HEAD | length)
        else:
            _text_head(out, K_PID, length)
        out += value
        count += 1
    value = scan.serial
    if value:
        length = len(value)
        if length < 24:
            append(K_SERIAL)
            append(_TEXT_HEAD | length)
        else:
            _text_head(out, K_SERIAL, length)
        out += value
        count += 1
    value = scan.lot
    if value:
        length = len(value)
        if length < 24:
            append(K_LOT)
            append(_TEXT_HEAD | length)
        else:
            _text_head(out, K_LOT, length)
        out += value
        count += 1
    value = scan.expiry
    if value:
        length = len(value)
        if length < 24:
            append(K_EXPIRY)
            append(_TEXT_HEAD | length)
        else:
            _text_head(out, K_EXPIRY, length)
        out += value
        count += 1
    append(K_ERR)
    err = scan.err
    if err < 24:
        append(err)
    else:
        cbor.write_head(out, 0, err)
    value = scan.made
    if value:
        length = len(value)
        if length < 24:
            append(K_MADE)
            append(_TEXT_HEAD | length)
        else:
            _text_head(out, K_MADE, length)
        out += value
        count += 1
    if ticket:
        value = ticket.encode()
        length = len(value)
        if length < 24:
            append(K_TICKET)
            append(_TEXT_HEAD | length)
        else:
            _text_head(out, K_TICKET, length)
        out += value
        count += 1
    if split_qty:
        append(K_SPLIT_QTY)
        if split_qty < 24:
            append(split_qty)
        else:
            cbor.write_head(out, 0, split_qty)
        count += 1
    out[0] = _MAP_HEAD | count  # at most 20 fields
    return bytes(out)
