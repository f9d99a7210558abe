"""Trace codes as a scan engine sends them: 20-digit 药品追溯码, GS1 element strings and MA codes.

A device decodes every scan itself and sends the fields in its event (docs/protocol.md); the gateway decodes
only for offline analysis (`gateway.domain.replay`), where an export holds the code as scanned. It gives the
device's answers: tests/gateway/wire/test_codes.py compares them with the firmware's decoder on the shared
vectors and on generated lines. Error numbers are the wire contract's (docs/protocol.md, "Validation errors").

>>> decode("]C081234567890123456789").pid
b'8123456'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Scan", "decode", "KIND_OTHER", "KIND_DIGITS20", "KIND_GS1", "KIND_MA"]

KIND_OTHER, KIND_DIGITS20, KIND_GS1, KIND_MA = 0, 1, 2, 3
MAX_LINE = 512

(OK, EMPTY, TOO_LONG, CHARSET, FULLWIDTH, DIGITS_LENGTH, DIGITS_PREFIX, COMMODITY_EAN, DRUG_STANDARD_CODE,
 NOT_TRACE_CODE, GS1_SYNTAX, GS1_UNKNOWN_AI, GS1_LENGTH, GS1_CHARSET, GS1_CHECK_DIGIT, GS1_DATE, GS1_DUPLICATE_AI,
 GS1_NO_GTIN, GS1_NO_SERIAL, MA_SYNTAX, MA_NO_SERIAL) = range(21)

_GS = b"\x1d"
_GS1_AIM_IDS = (b"]d2", b"]C1", b"]e0", b"]Q3", b"]J1")
_NUMERIC, _CHECK, _DATE, _DATETIME, _FIXED = 1, 2, 4, 8, 16
_F = _FIXED | _NUMERIC


def _table() -> dict[bytes, tuple[int, int]]:
    """AI -> (length, flags): the maximum length of a variable AI, the exact one of a FIXED AI."""
    table: dict[bytes, tuple[int, int]] = {}
    for ais, entry in (
        ("00", (18, _F | _CHECK)), ("01 02 03", (14, _F | _CHECK)), ("10 21 22 254 243 8002 8012 7020 7021 7022 7240"
                                                                    " 420 710 711 712 713 714 715", (20, 0)),
        ("11 12 13 15 16 17 7006", (6, _F | _DATE)), ("20", (2, _F)), ("7010", (2, 0)), ("235", (28, 0)),
        ("240 241 250 251 400 401 403 7002 8004", (30, 0)), ("242", (6, _NUMERIC)), ("30 37", (8, _NUMERIC)),
        ("402", (17, _F | _CHECK)), ("410 411 412 413 414 415 416 417", (13, _F | _CHECK)),
        ("422 424 426", (3, _F)), ("427 7008", (3, 0)), ("7001", (13, _F)), ("7003", (10, _F | _DATETIME)),
        ("7004", (4, _NUMERIC)), ("7005", (12, 0)), ("7009", (10, 0)), ("7023", (30, 0)),
        ("8001", (14, _F)), ("8005", (6, _F)), ("8006 8026", (18, _F)), ("8007", (34, 0)), ("8009", (50, 0)),
        ("8011", (12, _NUMERIC)), ("8013 8020", (25, 0)), ("8017 8018", (18, _F | _CHECK)),
        ("8019", (10, _NUMERIC)), ("8200", (70, 0)), ("90", (30, 0)),
    ):
        for ai in ais.split():
            table[ai.encode()] = entry
    return table


_TABLE = _table()
_DECIMAL = {f"{first}".encode() for first in (*range(310, 317), *range(320, 330), *range(330, 338),
                                              *range(340, 358), *range(360, 370))}
"""4-digit n6 AIs whose last digit (0-5) places the decimal point, by their first three digits."""
_AMOUNT = {b"390": (15, _NUMERIC, 9), b"392": (15, _NUMERIC, 9), b"394": (4, _F, 3), b"395": (6, _F, 5)}
_PREDEFINED = {f"{prefix:02d}".encode() for prefix in (0, 1, 2, 3, 4, *range(11, 21), *range(31, 37), 41)}
"""Two-digit prefixes of the AIs that need no GS after them (GS1 General Specifications 7.8.5)."""
_CSET82 = set(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!\"%&'()*+,-./:;<=>?_")
_MA_CHARS = set(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_/")
_MA_ELEMENTS = b"SLMEVDC"
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class Scan:
    """What one scanned line decodes to; empty bytes where a field does not apply (the event's fields)."""

    raw: bytes
    aim: bytes
    kind: int
    code: bytes
    pid: bytes = b""
    serial: bytes = b""
    lot: bytes = b""
    expiry: bytes = b""
    """YYMMDD; day 00 is the end of the month."""
    made: bytes = b""
    err: int = OK


class _Refused(Exception):
    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


def decode(line: bytes | str) -> Scan:
    """The scan `line` holds, with `err` saying why it is not a trace code when it is not one."""
    data = line.encode() if isinstance(line, str) else bytes(line)
    if len(data) > MAX_LINE + 2:
        return Scan(data[: MAX_LINE + 2].rstrip(b"\r\n"), b"", KIND_OTHER, b"", err=TOO_LONG)
    raw = data.rstrip(b"\r\n")
    scan = _decode_text(raw, raw)
    if scan.err:
        kept = bytes(byte for byte in raw if byte > 0x20 and byte != 0x7F or byte == 0x1D)
        if any(kept[index:index + 2] == b"\xef\xbc" and 0x90 <= kept[index + 2] <= 0x99
               for index in range(len(kept) - 2)):
            return Scan(raw, b"", KIND_OTHER, b"", err=FULLWIDTH)
        if any(byte > 0x7E for byte in kept):
            return Scan(raw, b"", KIND_OTHER, b"", err=CHARSET)
        if kept != raw:
            scan = _decode_text(raw, kept)
    return scan


def _printable_or_gs(byte: int) -> bool:
    return 0x20 < byte < 0x7F or byte == 0x1D


def _decode_text(raw: bytes, text: bytes) -> Scan:
    aim = b""
    if len(text) >= 3 and text[0] == 0x5D:  # "]"
        if not (_printable_or_gs(text[1]) and _printable_or_gs(text[2])):
            return Scan(raw, aim, KIND_OTHER, b"", err=CHARSET)
        aim, text = text[:3], text[3:]
    if not text:
        return Scan(raw, aim, KIND_OTHER, b"", err=EMPTY)
    if aim in _GS1_AIM_IDS or text[:1] == b"(":
        return _gs1(raw, aim, text, bracketed=aim not in _GS1_AIM_IDS)
    if text.startswith(b"MA."):
        return _ma(raw, aim, text)
    if text.isdigit():
        return _digits(raw, aim, text)
    if len(text) > 16 and text.startswith(b"01") and text[2:16].isdigit() and _check_digit(text[2:15]) == text[15] - 48:
        return _gs1(raw, aim, text, bracketed=False)
    return Scan(raw, aim, KIND_OTHER, text, err=NOT_TRACE_CODE)


def _digits(raw: bytes, aim: bytes, text: bytes) -> Scan:
    length = len(text)
    if length == 20:
        if text[0] != 0x38:  # "8"
            return Scan(raw, aim, KIND_OTHER, text, err=DIGITS_PREFIX)
        return Scan(raw, aim, KIND_DIGITS20, text, pid=text[:7], serial=text[7:16])
    if length in (8, 12, 13):
        err = COMMODITY_EAN
    elif length == 14 and text.startswith(b"86"):
        err = DRUG_STANDARD_CODE
    elif 16 <= length <= 24:
        err = DIGITS_LENGTH
    else:
        err = NOT_TRACE_CODE
    return Scan(raw, aim, KIND_OTHER, text, err=err)


def _check_digit(body: bytes) -> int:
    """GS1 mod-10: weights 3, 1, 3, ... from the right."""
    total = sum((byte - 48) * (3 if index % 2 == 0 else 1) for index, byte in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def _date_ok(yymmdd: bytes, day_zero: bool = True) -> bool:
    month, day = int(yymmdd[2:4]), int(yymmdd[4:6])
    if not 1 <= month <= 12:
        return False
    if day == 0:
        return day_zero
    if month == 2 and day == 29:
        return int(yymmdd[:2]) % 4 == 0
    return day <= _DAYS_IN_MONTH[month - 1]


def _ai_at(data: bytes, pos: int) -> tuple[bytes, int, int] | None:
    for size in (2, 3, 4):
        ai = data[pos:pos + size]
        if len(ai) < size:
            return None
        if ai in _TABLE:
            return (ai, *_TABLE[ai])
        if size == 4 and ai[3:].isdigit():
            if ai[3] <= 0x35 and ai[:3] in _DECIMAL:
                return ai, 6, _F
            amount = _AMOUNT.get(ai[:3])
            if amount is not None and ai[3] - 48 <= amount[2]:
                return ai, amount[0], amount[1]
        if size == 2 and b"91" <= ai <= b"99" and ai.isdigit():
            return ai, 90, 0
    return None


def _check_value(ai: bytes, value: bytes, length: int, flags: int) -> None:
    if (len(value) != length) if flags & _FIXED else not 0 < len(value) <= length:
        raise _Refused(GS1_LENGTH)
    if flags & _NUMERIC:
        if not value.isdigit():
            raise _Refused(GS1_CHARSET)
    elif not set(value) <= _CSET82:
        raise _Refused(GS1_CHARSET)
    if flags & _CHECK and _check_digit(value[:-1]) != value[-1] - 48:
        raise _Refused(GS1_CHECK_DIGIT)
    if flags & (_DATE | _DATETIME):
        if not _date_ok(value, not flags & _DATETIME):
            raise _Refused(GS1_DATE)
        if flags & _DATETIME and not (int(value[6:8]) < 24 and int(value[8:10]) < 60):
            raise _Refused(GS1_DATE)


def _elements(text: bytes, bracketed: bool) -> tuple[list[tuple[bytes, bytes]], bool]:
    """(ai, value) in order, and whether `text` already is their transmitted form."""
    elements: list[tuple[bytes, bytes]] = []
    tidy = not bracketed and text[-1:] != _GS
    pos, separator = 0, False
    while pos < len(text):
        if bracketed:
            close = text.find(b")", pos)
            found = _ai_at(text[pos + 1:close], 0) if text[pos:pos + 1] == b"(" and close >= 0 else None
            if found is None or found[0] != text[pos + 1:close]:
                raise _Refused(GS1_UNKNOWN_AI if text[pos:pos + 1] == b"(" and close >= 0 else GS1_SYNTAX)
            start = close + 1
            stop = _next_bracket(text, start)
        else:
            if text[pos] == 0x1D:
                tidy = tidy and separator
                separator = False
                pos += 1
                continue
            tidy = tidy and not separator
            found = _ai_at(text, pos)
            if found is None:
                raise _Refused(GS1_UNKNOWN_AI)
            start = pos + len(found[0])
            separator = found[0][:2] not in _PREDEFINED
            stop = text.find(_GS, start)
            stop = len(text) if stop < 0 else stop
            if found[2] & _FIXED:
                stop = min(stop, start + found[1])
        ai, length, flags = found
        value = text[start:stop]
        _check_value(ai, value, length, flags)
        if any(seen == ai for seen, _ in elements):
            raise _Refused(GS1_DUPLICATE_AI)
        elements.append((ai, value))
        pos = stop
    if not elements:
        raise _Refused(GS1_SYNTAX)
    return elements, tidy


def _next_bracket(text: bytes, start: int) -> int:
    pos = text.find(b"(", start)
    while pos >= 0:
        close = text.find(b")", pos)
        if 3 <= close - pos <= 5 and text[pos + 1:close].isdigit():
            return pos
        pos = text.find(b"(", pos + 1)
    return len(text)


def _joined(elements: list[tuple[bytes, bytes]]) -> bytes:
    parts, separator = [], False
    for ai, value in elements:
        parts += [_GS] if separator else []
        parts += [ai, value]
        separator = ai[:2] not in _PREDEFINED
    return b"".join(parts)


def _gs1(raw: bytes, aim: bytes, text: bytes, *, bracketed: bool) -> Scan:
    try:
        elements, tidy = _elements(text, bracketed)
    except _Refused as refused:
        return Scan(raw, aim, KIND_GS1, text, err=refused.err)
    fields = dict(elements)
    pid = fields.get(b"01") or fields.get(b"02", b"")
    serial = fields.get(b"21", b"")
    err = OK if pid and serial else GS1_NO_GTIN if not pid else GS1_NO_SERIAL
    return Scan(raw, aim, KIND_GS1, text if tidy else _joined(elements), pid=pid, serial=serial,
                lot=fields.get(b"10", b""), expiry=fields.get(b"17", b""), made=fields.get(b"11", b""), err=err)


def _ma(raw: bytes, aim: bytes, text: bytes) -> Scan:
    try:
        pid, serial, lot, expiry, made = _ma_fields(text)
    except _Refused as refused:
        return Scan(raw, aim, KIND_MA, text, err=refused.err)
    return Scan(raw, aim, KIND_MA, text, pid=pid, serial=serial, lot=lot, expiry=expiry, made=made)


def _ma_fields(text: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """MA.<country>.<class>.<registrant>.<product> then .S serial, .L lot, .M made, .E expiry, .V, .D, .C."""
    parts = text.split(b".")
    if len(text) > 150 or len(parts) < 5 or parts[0] != b"MA":
        raise _Refused(MA_SYNTAX)
    country, code_class, registrant, product = parts[1:5]
    if not (len(country) == 3 and country.isdigit() and len(code_class) == 2 and set(code_class) <= _MA_CHARS
            and len(registrant) == 6 and registrant.isdigit() and 1 <= len(product) <= 20
            and set(product) <= _MA_CHARS):
        raise _Refused(MA_SYNTAX)
    values: dict[int, bytes] = {}
    for part in parts[5:]:
        letter, value = part[:1], part[1:]
        if not value or letter not in (b"S", b"L", b"M", b"E", b"V", b"D", b"C") or not set(value) <= _MA_CHARS:
            raise _Refused(MA_SYNTAX)
        if letter[0] in values:
            raise _Refused(MA_SYNTAX)
        if letter in (b"M", b"E", b"V"):
            if len(value) not in (6, 8) or not value.isdigit() or not _date_ok(value[-6:]):
                raise _Refused(MA_SYNTAX)
            value = value[-6:]
        values[letter[0]] = value
    if not values.get(ord("S")):
        raise _Refused(MA_NO_SERIAL)
    return (text[:17 + len(product)], values[ord("S")], values.get(ord("L"), b""), values.get(ord("E"), b""),
            values.get(ord("M"), b""))
