"""The gateway's trace-code decoder gives the device's answers: a differential test against the firmware's own
decoder (tcagent.codec.codes) on the shared vectors and on generated lines of every format, broken ones included.
Only this test imports both sides."""

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.wire import codes
from tcagent.codec import codes as device_codes
from tcagent.codec import gs1 as device_gs1
from tcagent.codec import ma as device_ma
from tcagent.codec import reasons as device_errors

ROOT = Path(__file__).resolve().parents[3]
VECTORS = json.loads((ROOT / "tests/vectors/scans.json").read_text(encoding="utf-8"))["cases"]
FIELDS = ("raw", "aim", "kind", "code", "pid", "serial", "lot", "expiry", "made", "err")


def both(line: bytes) -> tuple[tuple[object, ...], tuple[object, ...]]:
    ours, theirs = codes.decode(line), device_codes.decode(line)
    return tuple(getattr(ours, name) for name in FIELDS), tuple(getattr(theirs, name) for name in FIELDS)


def test_the_shared_vectors_decode_alike_and_as_expected():
    for case in VECTORS:
        if case.get("today"):
            continue  # expiry against the date is the device's check; replay has no date of its own
        line = bytes.fromhex(case["line_hex"]) if "line_hex" in case else case["line"].encode()
        ours, theirs = both(line)
        assert ours == theirs, case["name"]
        assert device_errors.NAMES[codes.decode(line).err] == case["expect"]["err_name"], case["name"]


_AIS = sorted({*[ai.decode() for ai in codes._TABLE], "3103", "3925", "3951", "3959", "94", "01", "21", "17",
               "10", "11", "02"})
_VALUE_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij!%&'()*+,-./:;<=>?_ #"
_dates = st.builds(lambda y, m, d: f"{y:02d}{m:02d}{d:02d}", st.integers(0, 99), st.integers(0, 14),
                   st.integers(0, 32))


def _valid_value(draw: st.DrawFn, ai: str) -> str:
    """A value that keeps the rules of `ai` (length, digits, check digit, date), as a good scan has it."""
    _, length, flags = codes._ai_at(ai.encode(), 0) or (b"", 20, 0)
    size = length if flags & codes._FIXED else draw(st.integers(1, min(length, 20)))
    if flags & (codes._DATE | codes._DATETIME):
        day = draw(st.integers(1 if flags & codes._DATETIME else 0, 28))
        value = f"{draw(st.integers(0, 99)):02d}{draw(st.integers(1, 12)):02d}{day:02d}"
        return value + ("1259" if flags & codes._DATETIME else "")
    alphabet = "0123456789" if flags & codes._NUMERIC else _VALUE_CHARS.replace(" #", "")
    value = draw(st.text(alphabet, min_size=size, max_size=size))
    if flags & codes._CHECK:
        value = value[:-1] + str(codes._check_digit(value[:-1].encode()))
    return value


@st.composite
def _gs1_lines(draw: st.DrawFn) -> bytes:
    names = [draw(st.sampled_from(_AIS)) for _ in range(draw(st.integers(0, 3)))]
    names += [ai for ai in ("01", "21", "17", "10") if draw(st.integers(0, 3))]
    names = draw(st.permutations(names)) if names else ["01"]
    fields = []
    for ai in names:
        if draw(st.integers(0, 4)):
            value = _valid_value(draw, ai)
        elif draw(st.booleans()):
            value = draw(_dates)
        else:
            value = draw(st.text(draw(st.sampled_from(["0123456789", _VALUE_CHARS])), min_size=0, max_size=22))
        fields.append((ai, value))
    if draw(st.integers(0, 3)) == 0:
        text = "".join(f"({ai}){value}" for ai, value in fields)
    else:
        text = "".join(f"{ai}{value}" + draw(st.sampled_from(["\x1d", "\x1d", "", "\x1d\x1d"])) for ai, value in fields)
    aim = draw(st.sampled_from(["", "]d2", "]C1", "]Q3", "]e0", "]C0", "]\x1d1"]))
    suffix = draw(st.sampled_from(["", "\r\n", "\n", " "]))
    return (aim + text + suffix).encode()


@st.composite
def _ma_lines(draw: st.DrawFn) -> bytes:
    good = draw(st.integers(0, 3)) > 0
    parts = ["MA", "156" if good else draw(st.sampled_from(["156", "15", "1A6"])),
             "AB" if good else draw(st.sampled_from(["AB", "12", "A", "A-"])),
             "123456" if good else draw(st.sampled_from(["123456", "12345", "12345X"])),
             draw(st.text("0123456789ABCDEFabc-_/", min_size=1, max_size=20)) if good
             else draw(st.text("0123456789ABCDEFabc-_/.", min_size=0, max_size=22))]
    letters = draw(st.lists(st.sampled_from("SLMEVDC" if good else "SLMEVDCXs"), max_size=5, unique=good))
    for letter in (["S", *letters] if good and "S" not in letters else letters):
        if letter in "MEV" and (good or draw(st.booleans())):
            value = draw(st.sampled_from(["", "20"])) + draw(_dates.filter(lambda d: good <= ("01" <= d[2:4] <= "12")
                                                                            and d[4:] <= "28"))
        else:
            value = draw(st.text("0123456789ABCxyz-_/" + ("" if good else " #"), min_size=0 if not good else 1,
                                 max_size=12))
        parts.append(letter + value)
    return ".".join(parts).encode()


_digit_lines = st.builds(lambda prefix, rest: (prefix + rest).encode(), st.sampled_from(["", "8", "86", "9"]),
                         st.text("0123456789", min_size=0, max_size=26))
_any_lines = st.binary(max_size=40).map(lambda data: data.replace(b"\xef", b"\xef\xbc")) | st.text(max_size=30).map(
    lambda text: text.encode())


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_gs1_lines(), _ma_lines(), _digit_lines, _any_lines))
def test_generated_lines_decode_alike(line):
    ours, theirs = both(line)
    assert ours == theirs


def test_a_line_too_long_is_refused_alike():
    ours, theirs = both(b"8" * 600)
    assert ours == theirs and ours[-1] == device_errors.TOO_LONG


def test_the_tables_are_the_device_s():
    """Generated lines reach few of the 90-odd AIs: the tables themselves are compared, entry by entry."""
    assert codes._TABLE == device_gs1._TABLE
    assert codes._DECIMAL == set(device_gs1._DECIMAL_AIS) and codes._AMOUNT == device_gs1._AMOUNT_AIS
    assert codes._PREDEFINED == device_gs1._PREDEFINED_LENGTH and codes._CSET82 == set(device_gs1._CSET82)
    assert codes._MA_CHARS == set(device_ma._VALUE_CHARS)


def test_the_length_limits_are_the_device_s():
    head = "MA.156.AB.123456.P1.S"
    for length in (149, 150, 151):
        ours, theirs = both((head + "1" * (length - len(head))).encode())
        assert ours == theirs
    for length in (511, 512, 513, 514, 515):
        ours, theirs = both(b"8" * length + b"\r\n")
        assert ours == theirs
