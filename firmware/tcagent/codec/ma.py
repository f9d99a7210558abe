"""MA codes (IDcode, issuing agency "MA" under ISO/IEC 15459).

`MA.<country>.<class>.<registrant>.<product>` then data elements, each a dot,
one letter and a value: S serial, L lot, M production date, E expiry,
V validity, D sterilisation lot, C check (its algorithm is not public, so it
is kept but not verified). Dates are YYMMDD or YYYYMMDD. The code is ASCII
bytes, as scanned (see tcagent.codec.gs1 for why not str).
"""

from tcagent.codec import reasons
from tcagent.codec.compat import const, native
from tcagent.codec.errors import AgentError
from tcagent.codec.gs1 import date_ok, shown

_MAX_LENGTH = 150
# what a value may hold, digits and capitals first (checked with lstrip, which searches this from its start)
_VALUE_CHARS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_/"
# element letter (its byte) -> a bit of its own, to find one given twice
_ELEMENT_BITS = {0x53: 1, 0x4C: 2, 0x4D: 4, 0x45: 8, 0x56: 16, 0x44: 32, 0x43: 64}  # S L M E V D C
_DATE_ELEMENTS = const(4 | 8 | 16)  # M, E, V
_HEAD_LENGTH = const(17)  # "MA." + 3-digit country + "." + class + "." + registrant + "."


class MAError(AgentError):
    """An MA code that breaks a structural rule; `code` is from `tcagent.codec.reasons`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


@native
def parse(text):
    """Return (product identifier, serial, lot, expiry, made) of an MA code (bytes), or raise MAError.

    Fields the code does not carry are empty; dates are YYMMDD.
    """
    if len(text) > _MAX_LENGTH:
        raise MAError(reasons.MA_SYNTAX, "MA code of %d characters, at most %d" % (len(text), _MAX_LENGTH))
    parts = text.split(b".")
    if len(parts) < 5 or parts[0] != b"MA":
        raise MAError(reasons.MA_SYNTAX, "MA code wants MA.<country>.<class>.<registrant>.<product>")
    country = parts[1]
    code_class = parts[2]
    registrant = parts[3]
    product = parts[4]
    if len(country) != 3 or not country.isdigit():
        raise MAError(reasons.MA_SYNTAX, "MA country %r is not 3 digits" % shown(country))
    if len(code_class) != 2 or code_class.lstrip(_VALUE_CHARS):  # letters or digits; no call, it costs more
        raise MAError(reasons.MA_SYNTAX, "MA class %r is not 2 letters or digits" % shown(code_class))
    if len(registrant) != 6 or not registrant.isdigit():
        raise MAError(reasons.MA_SYNTAX, "MA registrant %r is not 6 digits" % shown(registrant))
    if not 1 <= len(product) <= 20 or product.lstrip(_VALUE_CHARS):
        raise MAError(reasons.MA_SYNTAX, "MA product code %r is not 1-20 letters or digits" % shown(product))
    serial = lot = expiry = made = b""
    seen = 0
    for index in range(5, len(parts)):
        part = parts[index]
        value = part[1:]
        bit = _ELEMENT_BITS.get(part[0]) if value else None
        if bit is None or value.lstrip(_VALUE_CHARS):
            raise MAError(reasons.MA_SYNTAX, "MA element %r is not a known letter and a value" % shown(part))
        if seen & bit:
            raise MAError(reasons.MA_SYNTAX, "MA element .%s appears twice" % shown(part[:1]))
        seen |= bit
        if bit & _DATE_ELEMENTS:
            if len(value) not in (6, 8) or not value.isdigit() or not date_ok(value[-6:]):
                raise MAError(reasons.MA_SYNTAX,
                              "MA element .%s is not a YYMMDD or YYYYMMDD date" % shown(part))
            value = value[-6:]
            if bit == 8:
                expiry = value
            elif bit == 4:
                made = value
        elif bit == 1:
            serial = value
        elif bit == 2:
            lot = value
    if not serial:
        raise MAError(reasons.MA_NO_SERIAL, "MA code has no serial element (.S)")
    return text[: _HEAD_LENGTH + len(product)], serial, lot, expiry, made
