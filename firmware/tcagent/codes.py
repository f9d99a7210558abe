"""Decode one scanned line into a traceability code: pure functions, no I/O.

The fields are ASCII bytes, as scanned, never str: on a microcontroller each
new str costs a lookup among the interned strings (tens of µs on an RP2040),
and the event carries them as bytes anyway.

>>> scan = decode(b"]C081234567890123456789\\r\\n")
>>> scan.kind == KIND_DIGITS20, scan.pid, scan.serial, scan.err
(True, b'8123456', b'789012345', 0)
"""

from tcagent import errors, gs1, ma
from tcagent.compat import const

KIND_OTHER = const(0)
KIND_DIGITS20 = const(1)
KIND_GS1 = const(2)
KIND_MA = const(3)
KIND_NAMES = ("other", "digits20", "gs1", "ma")

GS1_FULL = const(0)  # whole element string, GS between fields (default)
GS1_GTIN_SERIAL = const(1)  # 01 + GTIN + 21 + serial only
GS1_BRACKETED = const(2)  # (01)...(21)...

MAX_LINE = const(512)
_GS = const(0x1D)
_AIM_START = const(0x5D)  # "]"
_GS1_AIM_IDS = (b"]C1", b"]e0", b"]d2", b"]Q3", b"]J1")


class Scan:
    """What one scan decodes to; empty bytes where a field does not apply.

    The defaults are class attributes and a scan sets only the fields it has: on MicroPython every
    attribute set on an instance grows its attribute table, and twelve of them took about 0.4 ms on an
    RP2040 (there is no __slots__ there, so none here either).
    """

    aim = b""  # AIM symbology identifier, e.g. b"]d2"
    kind = KIND_OTHER
    code = b""  # canonical form to upload
    pid = b""  # product identifier: 7-digit prefix, GTIN-14 or MA product
    serial = b""
    lot = b""
    expiry = b""  # YYMMDD, day 00 = end of month
    made = b""  # production date YYMMDD
    err = errors.OK
    detail = ""  # why err is not OK, for people (str)
    elements = ()  # GS1: [(ai, value), ...]

    def __init__(self, raw):
        self.raw = raw  # bytes as framed, suffix removed

    def fail(self, code, detail):
        self.err = code
        self.detail = detail
        return self


def _kept(byte):
    """Whether cleaning keeps `byte` as it is: printable ASCII, or GS."""
    return 0x20 < byte < 0x7F or byte == _GS


def _clean(raw):
    """Drop spaces and control characters except GS; return (text, error or OK)."""
    kept = bytearray()
    for byte in raw:
        if byte > 0x20 and byte != 0x7F or byte == _GS:
            kept.append(byte)
    if b"\xef\xbc" in kept:  # UTF-8 of U+FF10..U+FF19 starts EF BC 90..99
        for index in range(len(kept) - 2):
            if kept[index] == 0xEF and kept[index + 1] == 0xBC and 0x90 <= kept[index + 2] <= 0x99:
                return b"", errors.FULLWIDTH
    for byte in kept:
        if byte > 0x7E:
            return b"", errors.CHARSET
    return bytes(kept), errors.OK


def decode(line, gs1_form=GS1_FULL, today=""):
    """Decode `line` (bytes or str as the engine sent it) into a Scan.

    `today` (YYMMDD), when the device knows the date, turns a past expiry
    into errors.EXPIRED; the code is decoded in full either way.

    The line is first decoded as framed. Every format checks each character
    it accepts, so a line that decodes was already clean; only a line that
    fails is cleaned (spaces and control characters dropped, others refused)
    and decoded again, which gives the same result as cleaning first at a
    fraction of the cost for the lines a counter sees.
    """
    if isinstance(line, str):
        line = line.encode()
    elif type(line) is not bytes:
        line = bytes(line)
    if len(line) > MAX_LINE + 2:
        scan = Scan(line[: MAX_LINE + 2].rstrip(b"\r\n"))
        return scan.fail(errors.TOO_LONG, "line longer than %d bytes" % MAX_LINE)
    raw = line.rstrip(b"\r\n")
    scan = Scan(raw)
    _decode_text(scan, raw, gs1_form)
    if scan.err:
        text, error = _clean(raw)
        if error == errors.FULLWIDTH:
            return Scan(raw).fail(error, "full-width digits: an input method, not a scan engine, sent this")
        if error:
            return Scan(raw).fail(error, "bytes outside printable ASCII")
        if text != raw:
            scan = Scan(raw)
            _decode_text(scan, text, gs1_form)
    if today and scan.expiry and not scan.err:
        if isinstance(today, str):
            today = today.encode()
        if _expired(scan.expiry, today):
            scan.fail(errors.EXPIRED, "expired %s, today %s" % (scan.expiry.decode(), today.decode()))
    return scan


def _decode_text(scan, text, gs1_form):
    """Decode `text` (the line without its suffix) into `scan`."""
    if len(text) >= 3 and text[0] == _AIM_START:
        if not (_kept(text[1]) and _kept(text[2])):
            scan.fail(errors.CHARSET, "AIM identifier needs cleaning")  # decoded again from the cleaned line
            return
        scan.aim = text[:3]
        text = text[3:]
    if not text:
        scan.fail(errors.EMPTY, "nothing but framing")
    elif scan.aim in _GS1_AIM_IDS:
        _decode_gs1(scan, text, gs1.parse, gs1_form)
    elif text[0] == 0x28:  # "("
        _decode_gs1(scan, text, gs1.parse_bracketed, gs1_form)
    elif text.startswith(b"MA."):
        _decode_ma(scan, text)
    elif text.isdigit():
        _decode_digits(scan, text)
    elif _looks_gs1(text):
        _decode_gs1(scan, text, gs1.parse, gs1_form)
    else:
        scan.code = text
        scan.fail(errors.NOT_TRACE_CODE, "no trace-code format matches")


def _looks_gs1(text):
    """A GS1 string from an engine that sends no AIM id: starts with (01) and a valid GTIN."""
    return (
        len(text) > 16
        and text.startswith(b"01")
        and text[2:16].isdigit()
        and gs1.check_digit(text[2:15]) == text[15] - 48
    )


def _decode_digits(scan, text):
    scan.code = text
    if len(text) == 20:
        if text[0] != 0x38:  # "8"
            scan.fail(errors.DIGITS_PREFIX, "20 digits must start with 8, got %s" % chr(text[0]))
            return
        scan.kind = KIND_DIGITS20
        scan.pid = text[:7]
        scan.serial = text[7:16]
    elif len(text) in (8, 12, 13):
        scan.fail(errors.COMMODITY_EAN, "%d-digit retail barcode, not a trace code" % len(text))
    elif len(text) == 14 and text.startswith(b"86"):
        scan.fail(errors.DRUG_STANDARD_CODE, "14-digit drug standard code (本位码), not a trace code")
    elif 16 <= len(text) <= 24:
        scan.fail(errors.DIGITS_LENGTH, "trace code wants 20 digits, got %d" % len(text))
    else:
        scan.fail(errors.NOT_TRACE_CODE, "%d digits match no trace-code format" % len(text))


def _decode_gs1(scan, text, parser, gs1_form):
    scan.kind = KIND_GS1
    try:
        elements = parser(text)
    except gs1.GS1Error as error:
        scan.code = text
        scan.fail(error.code, str(error))
        return
    scan.elements = elements
    pid = serial = b""
    for ai, value in elements:
        if ai == b"01" or ai == b"02" and not pid:
            pid = value
        elif ai == b"21":
            serial = value
        elif ai == b"10":
            scan.lot = value
        elif ai == b"17":
            scan.expiry = value
        elif ai == b"11":
            scan.made = value
    scan.pid = pid
    scan.serial = serial
    if gs1_form == GS1_GTIN_SERIAL and pid and serial:
        scan.code = b"01" + pid + b"21" + serial
    elif gs1_form == GS1_BRACKETED:
        scan.code = gs1.bracketed(elements)
    else:
        scan.code = gs1.join(elements)
    if not pid:
        scan.fail(errors.GS1_NO_GTIN, "GS1 code without GTIN (01 or 02)")
    elif not serial:
        scan.fail(errors.GS1_NO_SERIAL, "GS1 code without serial (21): not traceable per box")


def _decode_ma(scan, text):
    scan.code = text
    scan.kind = KIND_MA
    try:
        product, elements = ma.parse(text)
    except ma.MAError as error:
        scan.fail(error.code, str(error))
        return
    scan.pid = product
    scan.serial = elements.get(b"S", b"")
    scan.lot = elements.get(b"L", b"")
    scan.expiry = elements.get(b"E", b"")
    scan.made = elements.get(b"M", b"")


def _expired(expiry, today):
    """Whether YYMMDD `expiry` (day 00 = whole month) lies before YYMMDD `today` (both bytes)."""
    if expiry[4:6] == b"00":
        return expiry[:4] < today[:4]
    return expiry < today
