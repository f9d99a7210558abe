"""MA codes (IDcode, issuing agency "MA" under ISO/IEC 15459).

`MA.<country>.<class>.<registrant>.<product>` then data elements, each a dot,
one letter and a value: S serial, L lot, M production date, E expiry,
V validity, D sterilisation lot, C check (its algorithm is not public, so it
is kept but not verified). Dates are YYMMDD or YYYYMMDD. The code is ASCII
bytes, as scanned (see tcagent.gs1 for why not str).
"""

from tcagent import errors
from tcagent.gs1 import date_ok, shown

_ELEMENTS = b"SLMEVDC"
_DATE_ELEMENTS = b"MEV"
_MAX_LENGTH = 150
# what a value may hold, digits and capitals first (checked with lstrip, which searches this from its start)
_VALUE_CHARS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_/"


class MAError(ValueError):
    """An MA code that breaks a structural rule; `code` is from `tcagent.errors`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _alnum(text):
    return bool(text) and not text.lstrip(_VALUE_CHARS)


def parse(text):
    """Return (product identifier, {letter: value}) for an MA code (bytes), or raise MAError."""
    if len(text) > _MAX_LENGTH:
        raise MAError(errors.MA_SYNTAX, "MA code of %d characters, at most %d" % (len(text), _MAX_LENGTH))
    parts = text.split(b".")
    if len(parts) < 5 or parts[0] != b"MA":
        raise MAError(errors.MA_SYNTAX, "MA code wants MA.<country>.<class>.<registrant>.<product>")
    country, code_class, registrant, product = parts[1:5]
    if len(country) != 3 or not country.isdigit():
        raise MAError(errors.MA_SYNTAX, "MA country %r is not 3 digits" % shown(country))
    if len(code_class) != 2 or not _alnum(code_class):
        raise MAError(errors.MA_SYNTAX, "MA class %r is not 2 letters or digits" % shown(code_class))
    if len(registrant) != 6 or not registrant.isdigit():
        raise MAError(errors.MA_SYNTAX, "MA registrant %r is not 6 digits" % shown(registrant))
    if not 1 <= len(product) <= 20 or not _alnum(product):
        raise MAError(errors.MA_SYNTAX, "MA product code %r is not 1-20 letters or digits" % shown(product))
    elements = {}
    for index in range(5, len(parts)):
        part = parts[index]
        letter = part[:1]
        value = part[1:]
        if not letter or letter not in _ELEMENTS or not value or value.lstrip(_VALUE_CHARS):
            raise MAError(errors.MA_SYNTAX, "MA element %r is not a known letter and a value" % shown(part))
        if letter in elements:
            raise MAError(errors.MA_SYNTAX, "MA element .%s appears twice" % shown(letter))
        if letter in _DATE_ELEMENTS:
            if len(value) not in (6, 8) or not value.isdigit() or not date_ok(value[-6:]):
                raise MAError(errors.MA_SYNTAX,
                              "MA element .%s%s is not a YYMMDD or YYYYMMDD date" % (shown(letter), shown(value)))
            value = value[-6:]
        elements[letter] = value
    if b"S" not in elements:
        raise MAError(errors.MA_NO_SERIAL, "MA code has no serial element (.S)")
    return text[: 6 + len(country) + len(code_class) + len(registrant) + len(product)], elements
