"""Decode one scanned line into a traceability code: pure functions, no I/O.

>>> scan = decode(b"]C081234567890123456789\\r\\n")
>>> scan.kind == KIND_DIGITS20, scan.pid, scan.serial, scan.err
(True, '8123456', '789012345', 0)
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
_GS1_AIM_IDS = ("]C1", "]e0", "]d2", "]Q3", "]J1")


class Scan:
    """What one scan decodes to; empty strings where a field does not apply."""

    __slots__ = ("raw", "aim", "kind", "code", "pid", "serial", "lot", "expiry", "made", "err", "detail", "elements")

    def __init__(self, raw):
        self.raw = raw  # bytes as framed, suffix removed
        self.aim = ""  # AIM symbology identifier, e.g. "]d2"
        self.kind = KIND_OTHER
        self.code = ""  # canonical form to upload
        self.pid = ""  # product identifier: 7-digit prefix, GTIN-14 or MA product
        self.serial = ""
        self.lot = ""
        self.expiry = ""  # YYMMDD, day 00 = end of month
        self.made = ""  # production date YYMMDD
        self.err = errors.OK
        self.detail = ""  # why err is not OK, for people
        self.elements = ()  # GS1: ((ai, value), ...)

    def fail(self, code, detail):
        self.err = code
        self.detail = detail
        return self


def _clean(raw):
    """Drop spaces and control characters except GS; return (text, error or OK)."""
    kept = bytearray()
    for byte in raw:
        if byte > 0x20 and byte != 0x7F or byte == _GS:
            kept.append(byte)
    if b"\xef\xbc" in kept:  # UTF-8 of U+FF10..U+FF19 starts EF BC 90..99
        for index in range(len(kept) - 2):
            if kept[index] == 0xEF and kept[index + 1] == 0xBC and 0x90 <= kept[index + 2] <= 0x99:
                return "", errors.FULLWIDTH
    for byte in kept:
        if byte > 0x7E:
            return "", errors.CHARSET
    return kept.decode(), errors.OK


def _strip_suffix(raw):
    end = len(raw)
    while end and raw[end - 1] in (0x0A, 0x0D):
        end -= 1
    return bytes(raw[:end])


def decode(line, gs1_form=GS1_FULL, today=""):
    """Decode `line` (bytes or str as the engine sent it) into a Scan.

    `today` (YYMMDD), when the device knows the date, turns a past expiry
    into errors.EXPIRED; the code is decoded in full either way.
    """
    if isinstance(line, str):
        line = line.encode()
    scan = Scan(_strip_suffix(line[: MAX_LINE + 2]))
    if len(line) > MAX_LINE + 2:
        return scan.fail(errors.TOO_LONG, "line longer than %d bytes" % MAX_LINE)
    text, error = _clean(scan.raw)
    if error == errors.FULLWIDTH:
        return scan.fail(error, "full-width digits: an input method, not a scan engine, sent this")
    if error:
        return scan.fail(error, "bytes outside printable ASCII")
    if len(text) >= 3 and text[0] == "]":
        scan.aim = text[:3]
        text = text[3:]
    if not text:
        return scan.fail(errors.EMPTY, "nothing but framing")
    if scan.aim in _GS1_AIM_IDS:
        _decode_gs1(scan, text, gs1.parse, gs1_form)
    elif text[0] == "(":
        _decode_gs1(scan, text, gs1.parse_bracketed, gs1_form)
    elif text.startswith("MA."):
        _decode_ma(scan, text)
    elif gs1.is_digits(text):
        _decode_digits(scan, text)
    elif _looks_gs1(text):
        _decode_gs1(scan, text, gs1.parse, gs1_form)
    else:
        scan.code = text
        return scan.fail(errors.NOT_TRACE_CODE, "no trace-code format matches")
    if today and scan.expiry and not scan.err and _expired(scan.expiry, today):
        scan.fail(errors.EXPIRED, "expired %s, today %s" % (scan.expiry, today))
    return scan


def _looks_gs1(text):
    """A GS1 string from an engine that sends no AIM id: starts with (01) and a valid GTIN."""
    return (
        len(text) > 16
        and text[:2] == "01"
        and gs1.is_digits(text[2:16])
        and gs1.check_digit(text[2:15]) == ord(text[15]) - 48
    )


def _decode_digits(scan, text):
    scan.code = text
    if len(text) == 20:
        if text[0] != "8":
            scan.fail(errors.DIGITS_PREFIX, "20 digits must start with 8, got %s" % text[0])
            return
        scan.kind = KIND_DIGITS20
        scan.pid = text[:7]
        scan.serial = text[7:16]
    elif len(text) in (8, 12, 13):
        scan.fail(errors.COMMODITY_EAN, "%d-digit retail barcode, not a trace code" % len(text))
    elif len(text) == 14 and text[:2] == "86":
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
    scan.elements = tuple(elements)
    values = dict(elements)
    scan.pid = values.get("01", values.get("02", ""))
    scan.serial = values.get("21", "")
    scan.lot = values.get("10", "")
    scan.expiry = values.get("17", "")
    scan.made = values.get("11", "")
    if gs1_form == GS1_GTIN_SERIAL and scan.pid and scan.serial:
        scan.code = "01" + scan.pid + "21" + scan.serial
    elif gs1_form == GS1_BRACKETED:
        scan.code = gs1.bracketed(elements)
    else:
        scan.code = gs1.join(elements)
    if not scan.pid:
        scan.fail(errors.GS1_NO_GTIN, "GS1 code without GTIN (01 or 02)")
    elif not scan.serial:
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
    scan.serial = elements.get("S", "")
    scan.lot = elements.get("L", "")
    scan.expiry = elements.get("E", "")
    scan.made = elements.get("M", "")


def _expired(expiry, today):
    """Whether YYMMDD `expiry` (day 00 = whole month) lies before YYMMDD `today`."""
    if expiry[4:6] == "00":
        return expiry[:4] < today[:4]
    return expiry < today
