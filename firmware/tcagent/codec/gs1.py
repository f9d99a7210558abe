"""GS1 element strings: the AI table, parsing, and the checks a counter needs.

Parses the transmitted form (no leading FNC1, GS 0x1D ending variable
fields) and the bracketed human-readable form `(01)...(21)...`. Unknown AIs,
wrong or excessive lengths, bad check digits and impossible dates are errors
(`GS1Error` with a code from `tcagent.codec.reasons`), never guesses.

Everything is ASCII bytes, as scanned: on a microcontroller each new str costs
a lookup among the interned strings, and bytes methods (`isdigit`, `lstrip`,
`find`) check a whole value in C where a loop in Python would take a call per
character.
"""

from tcagent.codec import reasons
from tcagent.codec.compat import const, native
from tcagent.codec.errors import AgentError

GS = b"\x1d"
_GS_BYTE = const(0x1D)
NUMERIC = const(1)  # digits only
_CHECK = const(2)  # last digit is a GS1 mod-10 check digit
_DATE = const(4)  # starts with YYMMDD, day 00 allowed
_DATETIME = const(8)  # YYMMDDhhmm
FIXED = const(16)  # exactly `length` characters

# AI -> (length, flags): fixed AIs carry FIXED, variable ones their maximum.
_N = NUMERIC
_F = FIXED | NUMERIC
_TABLE = {
    b"00": (18, _F | _CHECK), b"01": (14, _F | _CHECK), b"02": (14, _F | _CHECK), b"03": (14, _F | _CHECK),
    b"10": (20, 0), b"11": (6, _F | _DATE), b"12": (6, _F | _DATE), b"13": (6, _F | _DATE),
    b"15": (6, _F | _DATE), b"16": (6, _F | _DATE), b"17": (6, _F | _DATE), b"20": (2, _F),
    b"21": (20, 0), b"22": (20, 0), b"235": (28, 0), b"240": (30, 0), b"241": (30, 0), b"242": (6, _N),
    b"243": (20, 0), b"250": (30, 0), b"251": (30, 0), b"254": (20, 0), b"30": (8, _N), b"37": (8, _N),
    b"400": (30, 0), b"401": (30, 0), b"402": (17, _F | _CHECK), b"403": (30, 0),
    b"410": (13, _F | _CHECK), b"411": (13, _F | _CHECK), b"412": (13, _F | _CHECK), b"413": (13, _F | _CHECK),
    b"414": (13, _F | _CHECK), b"415": (13, _F | _CHECK), b"416": (13, _F | _CHECK), b"417": (13, _F | _CHECK),
    b"420": (20, 0),
    b"422": (3, _F), b"424": (3, _F), b"426": (3, _F), b"427": (3, 0),
    b"7001": (13, _F), b"7002": (30, 0), b"7003": (10, _F | _DATETIME), b"7004": (4, _N), b"7005": (12, 0),
    b"7006": (6, _F | _DATE), b"7008": (3, 0), b"7009": (10, 0), b"7010": (2, 0), b"7020": (20, 0),
    b"7021": (20, 0), b"7022": (20, 0), b"7023": (30, 0), b"7240": (20, 0),
    b"710": (20, 0), b"711": (20, 0), b"712": (20, 0), b"713": (20, 0), b"714": (20, 0), b"715": (20, 0),
    b"8001": (14, _F), b"8002": (20, 0), b"8004": (30, 0), b"8005": (6, _F), b"8006": (18, _F),
    b"8007": (34, 0), b"8009": (50, 0), b"8011": (12, _N), b"8012": (20, 0), b"8013": (25, 0),
    b"8017": (18, _F | _CHECK), b"8018": (18, _F | _CHECK), b"8019": (10, _N), b"8020": (25, 0),
    b"8026": (18, _F), b"8200": (70, 0), b"90": (30, 0),
}
# 4-digit AIs n6 whose last digit (0-5) places the decimal point: their first three digits
_DECIMAL_AIS = (b"310", b"311", b"312", b"313", b"314", b"315", b"316", b"320", b"321", b"322", b"323",
                b"324", b"325", b"326", b"327", b"328", b"329", b"330", b"331", b"332", b"333", b"334",
                b"335", b"336", b"337", b"340", b"341", b"342", b"343", b"344", b"345", b"346", b"347",
                b"348", b"349", b"350", b"351", b"352", b"353", b"354", b"355", b"356", b"357", b"360",
                b"361", b"362", b"363", b"364", b"365", b"366", b"367", b"368", b"369")
# the same for amounts: first three digits -> (length, flags, highest decimal position)
_AMOUNT_AIS = {b"390": (15, _N, 9), b"392": (15, _N, 9), b"394": (4, _F, 3), b"395": (6, _F, 5)}
# Two-digit prefixes whose AIs never need a GS after them (GS1 General Specifications 7.8.5).
_PREDEFINED_LENGTH = {b"00", b"01", b"02", b"03", b"04", b"11", b"12", b"13", b"14", b"15", b"16", b"17",
                      b"18", b"19", b"20", b"31", b"32", b"33", b"34", b"35", b"36", b"41"}
# GS1 AI encodable character set 82, digits and capitals first: a value is checked with lstrip, which looks
# each character up in this string from its start.
_CSET82 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!\"%&'()*+,-./:;<=>?_"
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class GS1Error(AgentError):
    """A GS1 element string that breaks a rule; `code` is from `tcagent.codec.reasons`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def shown(value):
    """`value` as text for a message (a line not yet cleaned may hold bytes that are not UTF-8)."""
    try:
        return value.decode()
    except UnicodeError:
        return repr(value)


@native
def lookup(data, pos):
    """Return (ai, length, flags) for the AI starting at `pos` in `data` (bytes), or None when unknown."""
    for size in (2, 3, 4):
        ai = data[pos : pos + size]
        if len(ai) < size:
            return None
        found = _TABLE.get(ai)
        if found is not None:
            return ai, found[0], found[1]
        if size == 4 and 0x30 <= ai[3] <= 0x39:
            if ai[3] <= 0x35 and ai[:3] in _DECIMAL_AIS:
                return ai, 6, _F
            amount = _AMOUNT_AIS.get(ai[:3])
            if amount is not None and ai[3] - 48 <= amount[2]:
                return ai, amount[0], amount[1]
        if size == 2 and b"91" <= ai <= b"99" and ai.isdigit():
            return ai, 90, 0
    return None


@native
def check_digit(body):
    """GS1 mod-10 check digit for the ASCII digits `body` (everything but the check digit)."""
    # Weights run 3, 1, 3, ... from the right: the two sums swap at each digit, so the last digit ends up
    # in the weight-3 sum whatever the length. (MicroPython's bytes take no slice with a step.)
    weight3 = weight1 = 0
    for byte in body:
        weight3, weight1 = weight1 + byte, weight3
    count = len(body)
    total = 3 * weight3 + weight1 - 48 * (3 * ((count + 1) // 2) + count // 2)
    return (10 - total % 10) % 10


def _two_digits(text, pos):
    return text[pos] * 10 + text[pos + 1] - 528  # 528: the ASCII zeros, 48 * 11


@native
def date_ok(yymmdd, allow_day_zero=True):
    """Whether `yymmdd` (6 ASCII digits) is a real date; day 00 means end of month."""
    month = yymmdd[2] * 10 + yymmdd[3] - 528  # arithmetic inline: a call costs more than the digits
    day = yymmdd[4] * 10 + yymmdd[5] - 528
    if not 1 <= month <= 12:
        return False
    if day == 0:
        return allow_day_zero
    if month == 2 and day == 29:
        return _two_digits(yymmdd, 0) % 4 == 0  # 2000 is a leap year; GS1 years span 1951-2049
    return day <= _DAYS_IN_MONTH[month - 1]


@native
def check_value(ai, value, length, flags):
    """Raise GS1Error unless `value` is a valid value for `ai`."""
    if flags & FIXED:
        if len(value) != length:
            raise GS1Error(reasons.GS1_LENGTH,
                           "AI (%s) wants %d characters, got %d" % (shown(ai), length, len(value)))
    elif not 0 < len(value) <= length:
        raise GS1Error(reasons.GS1_LENGTH,
                       "AI (%s) wants 1 to %d characters, got %d" % (shown(ai), length, len(value)))
    if flags & NUMERIC:
        if not value.isdigit():
            raise GS1Error(reasons.GS1_CHARSET, "AI (%s) wants digits, got %r" % (shown(ai), shown(value)))
    elif value.lstrip(_CSET82):
        raise GS1Error(reasons.GS1_CHARSET, "AI (%s) has %r, outside GS1 character set 82"
                       % (shown(ai), chr(value.lstrip(_CSET82)[0])))
    if flags & _CHECK:
        expected = check_digit(value[:-1])
        if expected != value[-1] - 48:
            raise GS1Error(reasons.GS1_CHECK_DIGIT, "AI (%s) %s: check digit expected %d, got %s"
                           % (shown(ai), shown(value), expected, chr(value[-1])))
    if flags & (_DATE | _DATETIME):
        if not date_ok(value, not flags & _DATETIME):
            raise GS1Error(reasons.GS1_DATE, "AI (%s) %s is not a valid YYMMDD date" % (shown(ai), shown(value[:6])))
        if flags & _DATETIME and not (_two_digits(value, 6) < 24 and _two_digits(value, 8) < 60):
            raise GS1Error(reasons.GS1_DATE, "AI (%s) %s has no valid hhmm" % (shown(ai), shown(value)))


@native
def _add(elements, ai, value):
    for seen_ai, _ in elements:
        if seen_ai == ai:
            raise GS1Error(reasons.GS1_DUPLICATE_AI, "AI (%s) appears twice" % shown(ai))
    elements.append((ai, value))


def _needs_separator(ai):
    return ai[:2] not in _PREDEFINED_LENGTH


@native
def split(data):
    """Parse a transmitted element string (bytes): (list of (ai, value) in order, whether `data` is tidy).

    Tidy means `data` already is what join() makes of the list (a GS after each field that needs one, except
    the last, and no other GS), so a caller can keep `data` instead of joining the fields again.
    """
    elements = []  # type: list
    pos = 0
    end = len(data)
    tidy = end > 0 and data[end - 1] != _GS_BYTE
    separator = False  # the field before needs a GS before the next
    while pos < end:
        if data[pos] == _GS_BYTE:  # a stray or trailing separator
            if not separator:
                tidy = False
            separator = False
            pos += 1
            continue
        if separator:  # a fixed-length field that needs a GS was not given one
            tidy = False
        ai = data[pos : pos + 2]
        entry = _TABLE.get(ai)  # most AIs have two digits: lookup()'s first step, without its call
        if entry is not None:
            length, flags = entry
            pos += 2
            separator = ai not in _PREDEFINED_LENGTH
        else:
            found = lookup(data, pos)
            if found is None:
                raise GS1Error(reasons.GS1_UNKNOWN_AI, "unknown AI at %r" % shown(data[pos : pos + 4]))
            ai, length, flags = found
            pos += len(ai)
            separator = _needs_separator(ai)
        stop = data.find(GS, pos)
        if stop < 0:
            stop = end
        if flags & FIXED and stop > pos + length:
            stop = pos + length
        value = data[pos:stop]
        if flags or not 0 < len(value) <= length or value.lstrip(_CSET82):
            check_value(ai, value, length, flags)  # a plain field that passes needs no call: it costs more
        for seen_ai, _ in elements:
            if seen_ai == ai:
                raise GS1Error(reasons.GS1_DUPLICATE_AI, "AI (%s) appears twice" % shown(ai))
        elements.append((ai, value))
        pos = stop
    if not elements:
        raise GS1Error(reasons.GS1_SYNTAX, "no element strings")
    return elements, tidy


def parse(data):
    """Parse a transmitted element string (bytes) into a list of (ai, value) in order."""
    return split(data)[0]


def parse_bracketed(data):
    """Parse the human-readable form `(01)...(17)...` (bytes) into a list of (ai, value)."""
    elements = []  # type: list
    pos = 0
    while pos < len(data):
        close = data.find(b")", pos)
        if data[pos] != 0x28 or close < 0:  # "("
            raise GS1Error(reasons.GS1_SYNTAX, "expected '(AI)' at %r" % shown(data[pos : pos + 6]))
        ai = data[pos + 1 : close]
        found = lookup(ai, 0)
        if found is None or found[0] != ai:
            raise GS1Error(reasons.GS1_UNKNOWN_AI, "unknown AI (%s)" % shown(ai))
        start = close + 1
        pos = _next_bracket(data, start)
        value = data[start:pos]
        check_value(ai, value, found[1], found[2])
        _add(elements, ai, value)
    if not elements:
        raise GS1Error(reasons.GS1_SYNTAX, "no element strings")
    return elements


def _next_bracket(data, start):
    """Position of the next '(' that opens a 2-4 digit AI, or the end."""
    pos = data.find(b"(", start)
    while pos >= 0:
        close = data.find(b")", pos)
        if 3 <= close - pos <= 5 and data[pos + 1 : close].isdigit():
            return pos
        pos = data.find(b"(", pos + 1)
    return len(data)


def join(elements):
    """The transmitted form: GS after each field that needs one, except the last."""
    parts = []
    separator = False
    for ai, value in elements:
        if separator:
            parts.append(GS)
        parts.append(ai)
        parts.append(value)
        separator = _needs_separator(ai)
    return b"".join(parts)


def bracketed(elements):
    """The human-readable form `(ai)value...`."""
    parts = []
    for ai, value in elements:
        parts.append(b"(" + ai + b")")
        parts.append(value)
    return b"".join(parts)
