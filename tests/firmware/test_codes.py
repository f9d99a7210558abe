"""Trace-code decoder: the shared scan vectors on both implementations, and the decode CLI's contract."""

import pytest

from conftest import load_vector

CASES = load_vector("scans.json")["cases"]


def _line(case):
    return bytes.fromhex(case["line_hex"]) if "line_hex" in case else case["line"].encode()


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_scan_vector(fw, case):
    result = fw.call("scan", _line(case), today=case.get("today", ""))
    expected = case["expect"]
    got = {name: result[name] for name in expected}
    if "elements" in got:
        got["elements"] = [list(pair) for pair in got["elements"]]
    assert got == expected, result["detail"]
    assert (result["err"] == 0) == (result["detail"] == "")


def test_raw_keeps_the_line_as_framed(fw):
    result = fw.call("scan", b"]d2010690123456789221A\x1d10B\r\n")
    assert result["raw"] == b"]d2010690123456789221A\x1d10B"


def test_overlong_line_is_refused_not_truncated_silently(fw):
    result = fw.call("scan", b"8" * 600)
    assert result["err_name"] == "too_long"
    assert len(result["raw"]) <= 514


@pytest.mark.parametrize("form, expected", [
    (0, "010690123456789217261200102AB\x1d21XYZ123"),
    (1, "010690123456789221XYZ123"),
    (2, "(01)06901234567892(17)261200(10)2AB(21)XYZ123"),
])
def test_gs1_canonical_form_is_configurable(fw, form, expected):
    result = fw.call("scan", b"]d2010690123456789217261200102AB\x1d21XYZ123", gs1_form=form)
    assert result["code"] == expected


def test_every_error_has_a_name(fw):
    names = {fw.call("scan", _line(case))["err_name"] for case in CASES}
    assert "ok" in names and len(names) > 15
