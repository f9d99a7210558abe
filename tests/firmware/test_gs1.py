"""GS1 parsing compared field by field with biip, and the AI table checked against biip's."""

import re
from datetime import date

import pytest
from biip import ParseError
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CPythonFirmware, FirmwareError

GS = "\x1d"
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
PREDEFINED = {"00", "01", "02", "03", "04", "11", "12", "13", "14", "15", "16", "17", "18", "19", "20",
              "31", "32", "33", "34", "35", "36", "41"}


def _biip_lengths(ai):
    """(fixed, total length or maximum, numeric) from biip's format string, e.g. 'N2+X..20'."""
    parts = GS1ApplicationIdentifier.extract(ai).format.split("+")[1:]
    fixed = all(".." not in part for part in parts)
    total = sum(int(re.sub(r"^[NXY]\.*", "", part)) for part in parts)
    return fixed, total, all(part.startswith("N") for part in parts)


def test_ai_table_agrees_with_biip():
    table = CPythonFirmware().call("gs1_table")
    assert len(table) > 400
    for ai, length, fixed, numeric in table:
        assert (fixed, length, numeric) == _biip_lengths(ai), ai
        separator_required = GS1ApplicationIdentifier.extract(ai).separator_required
        assert (ai[:2] in PREDEFINED) == (not separator_required), ai


def gtins(valid=True):
    def finish(body):
        check = (10 - sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body))) % 10) % 10
        return body + str(check if valid else (check + 1) % 10)

    return st.text("0123456789", min_size=13, max_size=13).map(finish)


def dates(valid=True):
    if valid:
        days = st.dates(min_value=date(2000, 1, 1), max_value=date(2049, 12, 31))
        return days.map(lambda day: day.strftime("%y%m%d"))
    return st.sampled_from(["251301", "250230", "250431", "250000", "991232", "230229"])


def text82(max_size):
    return st.text(CSET82, min_size=1, max_size=max_size)


def element(valid=True):
    return st.one_of(
        st.tuples(st.just("01"), gtins(valid)),
        st.tuples(st.just("17"), dates(valid)),
        st.tuples(st.just("11"), dates(valid)),
        st.tuples(st.just("10"), text82(20)),
        st.tuples(st.just("21"), text82(20)),
        st.tuples(st.just("240"), text82(30)),
        st.tuples(st.just("30"), st.text("0123456789", min_size=1, max_size=8)),
        st.tuples(st.just("3103"), st.text("0123456789", min_size=6, max_size=6)),
        st.tuples(st.just("422"), st.text("0123456789", min_size=3, max_size=3)),
        st.tuples(st.just("7003"), dates(valid).map(lambda d: d + "1230")),
        st.tuples(st.just("91"), text82(40)),
    )


def transmitted(elements):
    parts = []
    for index, (ai, value) in enumerate(elements):
        parts.append(ai + value)
        if index < len(elements) - 1 and ai[:2] not in PREDEFINED:
            parts.append(GS)
    return "".join(parts)


def unique(elements):
    return len({ai for ai, _ in elements}) == len(elements)


def biip_parse(text, bracketed=False):
    """biip's reading as [(ai, value)], or None when it refuses (a bad GTIN check digit counts as refusal)."""
    try:
        message = GS1Message.parse_hri(text) if bracketed else GS1Message.parse(text)
    except ParseError:
        return None
    for element in message.element_strings:
        if element.ai.ai in ("01", "02"):
            try:
                Gtin.parse(element.value)
            except ParseError:
                return None
    return [[element.ai.ai, element.value] for element in message.element_strings]


@settings(max_examples=150)
@given(elements=st.lists(element(), min_size=1, max_size=6).filter(unique))
def test_valid_strings_parse_like_biip(fw, elements):
    text = transmitted(elements)
    expected = biip_parse(text)
    assert expected == [list(pair) for pair in elements]
    assert [list(pair) for pair in fw.call("gs1_parse", text)] == expected
    if any("(" in value or ")" in value for _, value in elements):
        return  # brackets inside values make the human-readable form ambiguous for any parser
    bracketed = "".join(f"({ai}){value}" for ai, value in elements)
    assert [list(pair) for pair in fw.call("gs1_parse", bracketed, bracketed=True)] == biip_parse(bracketed, True)


@settings(max_examples=150)
@given(
    before=st.lists(element(), max_size=3),
    bad=st.one_of(
        st.tuples(st.just("01"), gtins(valid=False)),
        st.tuples(st.just("17"), dates(valid=False)),
        st.tuples(st.just("11"), dates(valid=False)),
    ),
    after=st.lists(element(), max_size=2),
)
def test_invalid_strings_refused_like_biip(fw, before, bad, after):
    elements = before + [bad] + after
    if not unique(elements):
        return
    text = transmitted(elements)
    assert biip_parse(text) is None
    with pytest.raises(FirmwareError) as error:
        fw.call("gs1_parse", text)
    assert error.value.name == "GS1Error"


@pytest.mark.parametrize("text, code_name", [
    # an over-long lot is an error, not the start of another AI
    ("0106901234567892" + "10" + "A" * 21, "1 to 20 characters, got 21"),
    ("0106901234567892" + "21" + "1" * 21, "1 to 20 characters, got 21"),
    ("01069012345678", "wants 14 characters, got 12"),
    ("0106901234567892" + "23" + "1", "unknown AI"),
    ("0106901234567892" + "8999" + "1", "unknown AI"),
    ("0106901234567892" + "10", "1 to 20"),
    ("0106901234567892" + "30" + "12a", "digits"),
    ("0106901234567892" + "7003" + "2512312460", "hhmm"),
])
def test_firmware_refuses_what_it_cannot_be_sure_of(fw, text, code_name):
    with pytest.raises(FirmwareError, match=code_name):
        fw.call("gs1_parse", text)
