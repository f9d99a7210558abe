"""Validation error codes carried in the event (key 16) and shown to technicians.

The numbers are part of the wire contract (docs/protocol.md): never reuse one.
"""

from tcagent.codec.compat import const

OK = const(0)
EMPTY = const(1)  # nothing left after removing framing and stray characters
TOO_LONG = const(2)  # longer than any code we accept
CHARSET = const(3)  # characters no code kind uses (non-ASCII, letters in a numeric code)
FULLWIDTH = const(4)  # full-width digits (an input method, not a scan engine)
DIGITS_LENGTH = const(5)  # all digits, near 20 but not 20
DIGITS_PREFIX = const(6)  # 20 digits not starting with 8
COMMODITY_EAN = const(7)  # an 8/12/13-digit retail barcode, not a trace code
DRUG_STANDARD_CODE = const(8)  # 14-digit 药品本位码 starting 86, not a trace code
NOT_TRACE_CODE = const(9)  # readable, but no known trace-code format
GS1_SYNTAX = const(10)
GS1_UNKNOWN_AI = const(11)
GS1_LENGTH = const(12)
GS1_CHARSET = const(13)
GS1_CHECK_DIGIT = const(14)
GS1_DATE = const(15)
GS1_DUPLICATE_AI = const(16)
GS1_NO_GTIN = const(17)
GS1_NO_SERIAL = const(18)
MA_SYNTAX = const(19)
MA_NO_SERIAL = const(20)
EXPIRED = const(21)  # valid code past its expiry date (only when the device knows the date)

NAMES = (
    "ok", "empty", "too_long", "charset", "fullwidth", "digits_length", "digits_prefix",
    "commodity_ean", "drug_standard_code", "not_trace_code", "gs1_syntax", "gs1_unknown_ai",
    "gs1_length", "gs1_charset", "gs1_check_digit", "gs1_date", "gs1_duplicate_ai",
    "gs1_no_gtin", "gs1_no_serial", "ma_syntax", "ma_no_serial", "expired",
)
