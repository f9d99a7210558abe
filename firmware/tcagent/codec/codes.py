"""Decode one scanned line into a traceability code: pure functions, no I/O.

The fields are ASCII bytes, as scanned, never str: on a microcontroller each
new str costs a lookup among the interned strings (tens of µs on an RP2040),
and the event carries them as bytes anyway.

>>> scan = decode(b"]C081234567890123456789\\r\\n")
>>> scan.kind == KIND_DIGITS20, scan.pid, scan.serial, scan.err
(True, b'8123456', b'789012345', 0)
"""

from collections import namedtuple

from tcagent.codec import gs1, ma, reasons
from tcagent.codec.compat import const, native

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
_GS1_AIM_IDS = (b"]d2", b"]C1", b"]e0", b"]Q3", b"]J1")

# What one scan decodes to; empty bytes where a field does not apply. A tuple built once, with every field, at
# the end of decoding: on MicroPython each attribute set on an instance grows its attribute table (eight of
# them took 0.17 ms on an RP2040) and an attribute a class holds as default is read at twice the cost of a
# tuple's field.
#   raw: bytes as framed, suffix removed; aim: AIM symbology identifier, e.g. b"]d2"; kind: KIND_*;
#   code: canonical form to upload; pid: product identifier (7-digit prefix, GTIN-14 or MA product);
#   serial, lot; expiry: YYMMDD, day 00 = end of month; made: production date YYMMDD;
#   err: errors.*; detail: why err is not OK, for people (str); elements: GS1 ((ai, value), ...)
Scan = namedtuple("Scan", ("raw", "aim", "kind", "code", "pid", "serial", "lot", "expiry", "made", "err",
                           "detail", "elements"))


def _failed(raw, aim, kind, code, err, detail):
    """A scan that decoded to nothing traceable: what is known of it, and why."""
    return Scan(raw, aim, kind, code, b"", b"", b"", b"", b"", err, detail, ())


def _clean(raw):
    """Drop spaces and control characters except GS; return (text, error or OK)."""
    kept = bytearray()
    for byte in raw:
        if byte > 0x20 and byte != 0x7F or byte == _GS:
            kept.append(byte)
    if b"\xef\xbc" in kept:  # UTF-8 of U+FF10..U+FF19 starts EF BC 90..99
        for index in range(len(kept) - 2):
            if kept[index] == 0xEF and kept[index + 1] == 0xBC and 0x90 <= kept[index + 2] <= 0x99:
                return b"", reasons.FULLWIDTH
    for byte in kept:
        if byte > 0x7E:
            return b"", reasons.CHARSET
    return bytes(kept), reasons.OK


@native
def decode(line, gs1_form=GS1_FULL, today=""):
    """Decode `line` (bytes or str as the engine sent it) into a Scan.

    `today` (YYMMDD), when the device knows the date, turns a past expiry
    into reasons.EXPIRED; the code is decoded in full either way.

    The line is first decoded as framed. Every format checks each character
    it accepts, so a line that decodes was already clean; only a line that
    fails is cleaned (spaces and control characters dropped, others refused)
    and decoded again, which gives the same result as cleaning first at a
    fraction of the cost for the lines a counter sees.
    """
    if type(line) is not bytes:
        line = line.encode() if isinstance(line, str) else bytes(line)
    if len(line) > MAX_LINE + 2:
        return _failed(line[: MAX_LINE + 2].rstrip(b"\r\n"), b"", KIND_OTHER, b"", reasons.TOO_LONG,
                       "line longer than %d bytes" % MAX_LINE)
    raw = line.rstrip(b"\r\n")
    scan = _decode_text(raw, raw, gs1_form)
    if scan.err:
        text, error = _clean(raw)
        if error == reasons.FULLWIDTH:
            return _failed(raw, b"", KIND_OTHER, b"", error,
                           "full-width digits: an input method, not a scan engine, sent this")
        if error:
            return _failed(raw, b"", KIND_OTHER, b"", error, "bytes outside printable ASCII")
        if text != raw:
            scan = _decode_text(raw, text, gs1_form)
    if today and scan.expiry and not scan.err:
        if isinstance(today, str):
            today = today.encode()
        if _expired(scan.expiry, today):
            return Scan(scan.raw, scan.aim, scan.kind, scan.code, scan.pid, scan.serial, scan.lot, scan.expiry,
                        scan.made, reasons.EXPIRED, "expired %s, today %s" % (scan.expiry.decode(), today.decode()),
                        scan.elements)
    return scan


@native
def _decode_text(raw, text, gs1_form):
    """Decode `text` (the line without its suffix, maybe cleaned) into a Scan of `raw`."""
    aim = b""
    if len(text) >= 3 and text[0] == _AIM_START:
        first = text[1]  # both kept as cleaning keeps them (printable ASCII or GS; inline: a call costs more)
        second = text[2]
        if not ((0x20 < first < 0x7F or first == _GS) and (0x20 < second < 0x7F or second == _GS)):
            return _failed(raw, aim, KIND_OTHER, b"", reasons.CHARSET, "AIM identifier needs cleaning")
        aim = text[:3]
        text = text[3:]
    if not text:
        return _failed(raw, aim, KIND_OTHER, b"", reasons.EMPTY, "nothing but framing")
    if aim in _GS1_AIM_IDS:
        return _decode_gs1(raw, aim, text, False, gs1_form)
    if text[0] == 0x28:  # "("
        return _decode_gs1(raw, aim, text, True, gs1_form)
    if text.startswith(b"MA."):
        return _decode_ma(raw, aim, text)
    if text.isdigit():
        return _decode_digits(raw, aim, text)
    if _looks_gs1(text):
        return _decode_gs1(raw, aim, text, False, gs1_form)
    return _failed(raw, aim, KIND_OTHER, text, reasons.NOT_TRACE_CODE, "no trace-code format matches")


@native
def _looks_gs1(text):
    """A GS1 string from an engine that sends no AIM id: starts with (01) and a valid GTIN."""
    return (
        len(text) > 16
        and text.startswith(b"01")
        and text[2:16].isdigit()
        and gs1.check_digit(text[2:15]) == text[15] - 48
    )


@native
def _decode_digits(raw, aim, text):
    length = len(text)
    if length == 20:
        if text[0] != 0x38:  # "8"
            return _failed(raw, aim, KIND_OTHER, text, reasons.DIGITS_PREFIX,
                           "20 digits must start with 8, got %s" % chr(text[0]))
        return Scan(raw, aim, KIND_DIGITS20, text, text[:7], text[7:16], b"", b"", b"", reasons.OK, "", ())
    if length in (8, 12, 13):
        return _failed(raw, aim, KIND_OTHER, text, reasons.COMMODITY_EAN,
                       "%d-digit retail barcode, not a trace code" % length)
    if length == 14 and text.startswith(b"86"):
        return _failed(raw, aim, KIND_OTHER, text, reasons.DRUG_STANDARD_CODE,
                       "14-digit drug standard code (本位码), not a trace code")
    if 16 <= length <= 24:
        return _failed(raw, aim, KIND_OTHER, text, reasons.DIGITS_LENGTH,
                       "trace code wants 20 digits, got %d" % length)
    return _failed(raw, aim, KIND_OTHER, text, reasons.NOT_TRACE_CODE,
                   "%d digits match no trace-code format" % length)


@native
def _decode_gs1(raw, aim, text, bracketed, gs1_form):
    try:
        if bracketed:
            elements = gs1.parse_bracketed(text)
            tidy = False
        else:
            elements, tidy = gs1.split(text)
    except gs1.GS1Error as error:
        return _failed(raw, aim, KIND_GS1, text, error.code, str(error))
    pid = serial = lot = expiry = made = b""
    for ai, value in elements:
        if ai == b"01":
            pid = value
        elif ai == b"21":
            serial = value
        elif ai == b"17":
            expiry = value
        elif ai == b"10":
            lot = value
        elif ai == b"11":
            made = value
        elif ai == b"02" and not pid:
            pid = value
    if gs1_form == GS1_GTIN_SERIAL and pid and serial:
        code = b"01" + pid + b"21" + serial
    elif gs1_form == GS1_BRACKETED:
        code = gs1.bracketed(elements)
    elif tidy:  # the line already is the transmitted form: joining the fields again would give its bytes
        code = text
    else:
        code = gs1.join(elements)
    err = reasons.OK
    detail = ""
    if not pid:
        err = reasons.GS1_NO_GTIN
        detail = "GS1 code without GTIN (01 or 02)"
    elif not serial:
        err = reasons.GS1_NO_SERIAL
        detail = "GS1 code without serial (21): not traceable per box"
    return Scan(raw, aim, KIND_GS1, code, pid, serial, lot, expiry, made, err, detail, elements)


@native
def _decode_ma(raw, aim, text):
    try:
        product, serial, lot, expiry, made = ma.parse(text)
    except ma.MAError as error:
        return _failed(raw, aim, KIND_MA, text, error.code, str(error))
    return Scan(raw, aim, KIND_MA, text, product, serial, lot, expiry, made, reasons.OK, "", ())


def _expired(expiry, today):
    """Whether YYMMDD `expiry` (day 00 = whole month) lies before YYMMDD `today` (both bytes)."""
    if expiry[4:6] == b"00":
        return expiry[:4] < today[:4]
    return expiry < today
