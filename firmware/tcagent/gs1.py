"""GS1 element strings: the AI table, parsing, and the checks a counter needs.

Parses the transmitted form (no leading FNC1, GS 0x1D ending variable
fields) and the bracketed human-readable form `(01)...(21)...`. Unknown AIs,
wrong or excessive lengths, bad check digits and impossible dates are errors
(`GS1Error` with a code from `tcagent.errors`), never guesses.
"""

from tcagent import errors
from tcagent.compat import const

GS = "\x1d"
NUMERIC = const(1)  # digits only
_CHECK = const(2)  # last digit is a GS1 mod-10 check digit
_DATE = const(4)  # starts with YYMMDD, day 00 allowed
_DATETIME = const(8)  # YYMMDDhhmm
FIXED = const(16)  # exactly `length` characters

# AI -> (length, flags): fixed AIs carry FIXED, variable ones their maximum.
_N = NUMERIC
_F = FIXED | NUMERIC
_TABLE = {
    "00": (18, _F | _CHECK), "01": (14, _F | _CHECK), "02": (14, _F | _CHECK), "03": (14, _F | _CHECK),
    "10": (20, 0), "11": (6, _F | _DATE), "12": (6, _F | _DATE), "13": (6, _F | _DATE),
    "15": (6, _F | _DATE), "16": (6, _F | _DATE), "17": (6, _F | _DATE), "20": (2, _F),
    "21": (20, 0), "22": (20, 0), "235": (28, 0), "240": (30, 0), "241": (30, 0), "242": (6, _N),
    "243": (20, 0), "250": (30, 0), "251": (30, 0), "254": (20, 0), "30": (8, _N), "37": (8, _N),
    "400": (30, 0), "401": (30, 0), "402": (17, _F | _CHECK), "403": (30, 0),
    "410": (13, _F | _CHECK), "411": (13, _F | _CHECK), "412": (13, _F | _CHECK), "413": (13, _F | _CHECK),
    "414": (13, _F | _CHECK), "415": (13, _F | _CHECK), "416": (13, _F | _CHECK), "417": (13, _F | _CHECK),
    "420": (20, 0),
    "422": (3, _F), "424": (3, _F), "426": (3, _F), "427": (3, 0),
    "7001": (13, _F), "7002": (30, 0), "7003": (10, _F | _DATETIME), "7004": (4, _N), "7005": (12, 0),
    "7006": (6, _F | _DATE), "7008": (3, 0), "7009": (10, 0), "7010": (2, 0), "7020": (20, 0),
    "7021": (20, 0), "7022": (20, 0), "7023": (30, 0), "7240": (20, 0),
    "710": (20, 0), "711": (20, 0), "712": (20, 0), "713": (20, 0), "714": (20, 0), "715": (20, 0),
    "8001": (14, _F), "8002": (20, 0), "8004": (30, 0), "8005": (6, _F), "8006": (18, _F),
    "8007": (34, 0), "8009": (50, 0), "8011": (12, _N), "8012": (20, 0), "8013": (25, 0),
    "8017": (18, _F | _CHECK), "8018": (18, _F | _CHECK), "8019": (10, _N), "8020": (25, 0),
    "8026": (18, _F), "8200": (70, 0), "90": (30, 0),
}
# 4-digit AIs n6 whose last digit (0-5) places the decimal point: their first three digits
_DECIMAL_AIS = ("310", "311", "312", "313", "314", "315", "316", "320", "321", "322", "323",
                "324", "325", "326", "327", "328", "329", "330", "331", "332", "333", "334",
                "335", "336", "337", "340", "341", "342", "343", "344", "345", "346", "347",
                "348", "349", "350", "351", "352", "353", "354", "355", "356", "357", "360",
                "361", "362", "363", "364", "365", "366", "367", "368", "369")
# the same for amounts: first three digits -> (length, flags, highest decimal position)
_AMOUNT_AIS = {"390": (15, _N, 9), "392": (15, _N, 9), "394": (4, _F, 3), "395": (6, _F, 5)}
# Two-digit prefixes whose AIs never need a GS after them (GS1 General Specifications 7.8.5).
_PREDEFINED_LENGTH = ("00", "01", "02", "03", "04", "11", "12", "13", "14", "15", "16", "17",
                      "18", "19", "20", "31", "32", "33", "34", "35", "36", "41")
# GS1 AI encodable character set 82.
_CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class GS1Error(ValueError):
    """A GS1 element string that breaks a rule; `code` is from `tcagent.errors`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def lookup(data, pos):
    """Return (ai, length, flags) for the AI starting at `pos`, or None when unknown."""
    for size in (2, 3, 4):
        ai = data[pos : pos + size]
        if len(ai) < size:
            return None
        if ai in _TABLE:
            length, flags = _TABLE[ai]
            return ai, length, flags
        if size == 4 and is_digits(ai[3]):
            if ai[:3] in _DECIMAL_AIS and ai[3] <= "5":
                return ai, 6, _F
            if ai[:3] in _AMOUNT_AIS:
                length, flags, highest = _AMOUNT_AIS[ai[:3]]
                if int(ai[3]) <= highest:
                    return ai, length, flags
        if size == 2 and "91" <= ai <= "99" and is_digits(ai):
            return ai, 90, 0
    return None


def is_digits(text):
    """True when `text` is non-empty and all ASCII digits (str.isdigit also takes other scripts)."""
    if not text:
        return False
    for char in text:
        if not "0" <= char <= "9":
            return False
    return True


def check_digit(body):
    """GS1 mod-10 check digit for the digits `body` (everything but the check digit)."""
    total = 0
    weight = 3
    for index in range(len(body) - 1, -1, -1):
        total += (ord(body[index]) - 48) * weight
        weight = 4 - weight
    return (10 - total % 10) % 10


def date_ok(yymmdd, allow_day_zero=True):
    """Whether `yymmdd` (6 digits) is a real date; day 00 means end of month."""
    month = int(yymmdd[2:4])
    day = int(yymmdd[4:6])
    if not 1 <= month <= 12:
        return False
    if day == 0:
        return allow_day_zero
    if month == 2 and day == 29:
        return int(yymmdd[:2]) % 4 == 0  # 2000 is a leap year; GS1 years span 1951-2049
    return day <= _DAYS_IN_MONTH[month - 1]


def check_value(ai, value, length, flags):
    """Raise GS1Error unless `value` is a valid value for `ai`."""
    if flags & FIXED:
        if len(value) != length:
            raise GS1Error(errors.GS1_LENGTH, "AI (%s) wants %d characters, got %d" % (ai, length, len(value)))
    elif not 0 < len(value) <= length:
        raise GS1Error(errors.GS1_LENGTH, "AI (%s) wants 1 to %d characters, got %d" % (ai, length, len(value)))
    if flags & NUMERIC:
        if not is_digits(value):
            raise GS1Error(errors.GS1_CHARSET, "AI (%s) wants digits, got %r" % (ai, value))
    else:
        for char in value:
            if char not in _CSET82:
                raise GS1Error(errors.GS1_CHARSET, "AI (%s) has %r, outside GS1 character set 82" % (ai, char))
    if flags & _CHECK:
        expected = check_digit(value[:-1])
        if expected != ord(value[-1]) - 48:
            raise GS1Error(errors.GS1_CHECK_DIGIT,
                           "AI (%s) %s: check digit expected %d, got %s" % (ai, value, expected, value[-1]))
    if flags & (_DATE | _DATETIME):
        if not date_ok(value[:6], not flags & _DATETIME):
            raise GS1Error(errors.GS1_DATE, "AI (%s) %s is not a valid YYMMDD date" % (ai, value[:6]))
        if flags & _DATETIME and not (int(value[6:8]) < 24 and int(value[8:10]) < 60):
            raise GS1Error(errors.GS1_DATE, "AI (%s) %s has no valid hhmm" % (ai, value))


def _add(elements, ai, value):
    for seen_ai, _ in elements:
        if seen_ai == ai:
            raise GS1Error(errors.GS1_DUPLICATE_AI, "AI (%s) appears twice" % ai)
    elements.append((ai, value))


def parse(data):
    """Parse a transmitted element string into a list of (ai, value) in order."""
    elements = []  # type: list
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == GS:  # a stray or trailing separator
            pos += 1
            continue
        found = lookup(data, pos)
        if found is None:
            raise GS1Error(errors.GS1_UNKNOWN_AI, "unknown AI at %r" % data[pos : pos + 4])
        ai, length, flags = found
        pos += len(ai)
        if flags & FIXED:
            value = data[pos : pos + length]
            if GS in value:
                value = value[: value.index(GS)]
        else:
            stop = data.find(GS, pos)
            value = data[pos : end if stop < 0 else stop]
        check_value(ai, value, length, flags)
        _add(elements, ai, value)
        pos += len(value)
    if not elements:
        raise GS1Error(errors.GS1_SYNTAX, "no element strings")
    return elements


def parse_bracketed(data):
    """Parse the human-readable form `(01)...(17)...` into a list of (ai, value)."""
    elements = []  # type: list
    pos = 0
    while pos < len(data):
        close = data.find(")", pos)
        if data[pos] != "(" or close < 0:
            raise GS1Error(errors.GS1_SYNTAX, "expected '(AI)' at %r" % data[pos : pos + 6])
        ai = data[pos + 1 : close]
        found = lookup(ai, 0)
        if found is None or found[0] != ai:
            raise GS1Error(errors.GS1_UNKNOWN_AI, "unknown AI (%s)" % ai)
        start = close + 1
        pos = _next_bracket(data, start)
        value = data[start:pos]
        check_value(ai, value, found[1], found[2])
        _add(elements, ai, value)
    if not elements:
        raise GS1Error(errors.GS1_SYNTAX, "no element strings")
    return elements


def _next_bracket(data, start):
    """Position of the next '(' that opens a 2-4 digit AI, or the end."""
    pos = data.find("(", start)
    while pos >= 0:
        close = data.find(")", pos)
        if 3 <= close - pos <= 5 and is_digits(data[pos + 1 : close]):
            return pos
        pos = data.find("(", pos + 1)
    return len(data)


def join(elements):
    """The transmitted form: GS after each field that needs one, except the last."""
    parts = []
    last = len(elements) - 1
    for index, (ai, value) in enumerate(elements):
        parts.append(ai)
        parts.append(value)
        if index < last and ai[:2] not in _PREDEFINED_LENGTH:
            parts.append(GS)
    return "".join(parts)


def bracketed(elements):
    """The human-readable form `(ai)value...`."""
    return "".join("(%s)%s" % (ai, value) for ai, value in elements)
