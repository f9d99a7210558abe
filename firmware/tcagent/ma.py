"""MA codes (IDcode, issuing agency "MA" under ISO/IEC 15459).

`MA.<country>.<class>.<registrant>.<product>` then data elements, each a dot,
one letter and a value: S serial, L lot, M production date, E expiry,
V validity, D sterilisation lot, C check (its algorithm is not public, so it
is kept but not verified). Dates are YYMMDD or YYYYMMDD.
"""

from tcagent import errors
from tcagent.gs1 import date_ok, is_digits

_ELEMENTS = "SLMEVDC"
_DATE_ELEMENTS = "MEV"
_MAX_LENGTH = 150


class MAError(ValueError):
    """An MA code that breaks a structural rule; `code` is from `tcagent.errors`."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _alnum(text):
    for char in text:
        if not ("0" <= char <= "9" or "A" <= char <= "Z" or "a" <= char <= "z" or char in "-_/"):
            return False
    return bool(text)


def parse(text):
    """Return (product identifier, {letter: value}) for an MA code, or raise MAError."""
    if len(text) > _MAX_LENGTH:
        raise MAError(errors.MA_SYNTAX, "MA code of %d characters, at most %d" % (len(text), _MAX_LENGTH))
    parts = text.split(".")
    if len(parts) < 5 or parts[0] != "MA":
        raise MAError(errors.MA_SYNTAX, "MA code wants MA.<country>.<class>.<registrant>.<product>")
    country, code_class, registrant, product = parts[1:5]
    if len(country) != 3 or not is_digits(country):
        raise MAError(errors.MA_SYNTAX, "MA country %r is not 3 digits" % country)
    if len(code_class) != 2 or not _alnum(code_class):
        raise MAError(errors.MA_SYNTAX, "MA class %r is not 2 letters or digits" % code_class)
    if len(registrant) != 6 or not is_digits(registrant):
        raise MAError(errors.MA_SYNTAX, "MA registrant %r is not 6 digits" % registrant)
    if not 1 <= len(product) <= 20 or not _alnum(product):
        raise MAError(errors.MA_SYNTAX, "MA product code %r is not 1-20 letters or digits" % product)
    elements = {}
    for part in parts[5:]:
        letter = part[:1]
        value = part[1:]
        if not letter or letter not in _ELEMENTS or not _alnum(value):
            raise MAError(errors.MA_SYNTAX, "MA element %r is not a known letter and a value" % part)
        if letter in elements:
            raise MAError(errors.MA_SYNTAX, "MA element .%s appears twice" % letter)
        if letter in _DATE_ELEMENTS:
            if len(value) not in (6, 8) or not is_digits(value) or not date_ok(value[-6:]):
                raise MAError(errors.MA_SYNTAX, "MA element .%s%s is not a YYMMDD or YYYYMMDD date" % (letter, value))
            value = value[-6:]
        elements[letter] = value
    if "S" not in elements:
        raise MAError(errors.MA_NO_SERIAL, "MA code has no serial element (.S)")
    return ".".join(parts[:5]), elements
