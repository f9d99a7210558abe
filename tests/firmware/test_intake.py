"""Scan intake on both interpreters: framing, partial-line timeout, over-long lines, re-reads, control barcodes."""

import pytest


def frame(fw, *chunks, **options):
    return fw.call("frame", [[data, at] for data, at in chunks], **options)


def test_lines_split_on_any_suffix_byte_and_empty_lines_skipped(fw):
    result = frame(fw, (b"8123\r\n81", 0), (b"24\r\r\n\n", 5))
    assert result["lines"] == [b"8123", b"8124"]


def test_a_line_split_over_reads_is_joined(fw):
    result = frame(fw, (b"]d20106", 0), (b"90123456789221X", 30), (b"\r", 60))
    assert result["lines"] == [b"]d2010690123456789221X"]


def test_partial_line_is_taken_after_silence(fw):
    result = frame(fw, (b"81234567890123456789", 0), (b"", 150), (b"", 250), timeout_ms=200)
    assert result["lines"] == [b"81234567890123456789"] and result["timeouts"] == 1


def test_overlong_line_is_cut_for_the_decoder_and_the_rest_dropped(fw):
    result = frame(fw, (b"8" * 2000 + b"\r\n" + b"81\r\n", 0))
    assert [len(line) for line in result["lines"]] == [515, 2] and result["overlong"] == 1
    assert fw.call("scan", result["lines"][0])["err_name"] == "too_long"


def test_identical_reread_inside_the_window_is_dropped_sliding(fw):
    result = frame(fw, (b"A\r", 0), (b"A\r", 400), (b"A\r", 800), (b"B\r", 900), (b"A\r", 1000), (b"A\r", 3000),
                   debounce_ms=500)
    assert result["lines"] == [b"A", b"B", b"A", b"A"] and result["dropped"] == 2


@pytest.mark.parametrize("line, expected", [
    (b"TC:MODE:SALE", [1, 1]),
    (b"TC:MODE:RETURN", [1, 2]),
    (b"TC:MODE:6", [1, 6]),
    (b"TC:MODE:ADJUST", [1, 7]),
    (b"TC:MODE:7", [1, 7]),
    (b"TC:MODE:8", [0, "unknown mode '8'"]),
    (b"TC:MODE:9", [0, "unknown mode '9'"]),
    (b"TC:TKT:T20260101-0007", [2, "T20260101-0007"]),
    (b"TC:TKT:", [2, ""]),
    (b"TC:TKT:" + b"x" * 41, [0, "ticket number over 40 characters"]),
    (b"TC:QTY:3", [3, 3]),
    (b"TC:QTY:0", [0, "split quantity must be 1-9999"]),
    (b"TC:QTY:12345", [0, "split quantity must be 1-9999"]),
    (b"TC:NOPE", [0, "unknown control barcode"]),
    (b"]C0TC:MODE:PURCHASE", [1, 3]),
    (b"]C0TC:QTY:2", [3, 2]),
    (b"]C081234567890123456789", None),
    (b"]C0", None),
    (b"81234567890123456789", None),
])
def test_control_barcodes(fw, line, expected):
    result = fw.call("control_barcode", line)
    assert (list(result) if result is not None else None) == expected
