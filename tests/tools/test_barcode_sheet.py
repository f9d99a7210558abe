"""The printed test sheet: every barcode reads back (with zxing-cpp) as the text it stands for, and the device's
own decoder gives each the result the sheet prints."""

import zxingcpp
from PIL import Image

from tcagent.codec import codes
from tools import barcode_sheet
from tools.barcode_sheet import ITEMS

_AIM = {"Code128": "]C0", "EAN13": "]E0", "DataMatrix": "]d2", "QRCode": "]Q1"}


def _read(image: Image.Image) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(image, text_mode=zxingcpp.TextMode.Plain)


def test_each_barcode_reads_back_as_what_the_scan_engine_would_send():
    for item in ITEMS:
        [found] = _read(barcode_sheet.barcode_image(item))
        assert found.format.name == item.format, item.key
        text = found.text
        if item.format == "DataMatrix":
            assert found.content_type == zxingcpp.ContentType.GS1, item.key  # FNC1 in first position
        assert _AIM[item.format] + text == item.scanned, (item.key, text)


def test_the_device_decoder_agrees_with_the_printed_expectations():
    for item in ITEMS:
        if not item.verdict:
            continue
        scan = codes.decode(item.scanned.encode(), today="261122")
        expected = int(item.local.removeprefix("err=")) if item.local else 0
        assert scan.err == expected, (item.key, scan.err, scan.detail)


def test_the_pages_hold_every_barcode_and_the_pdf_is_written(tmp_path):
    assert barcode_sheet.main(["--out", str(tmp_path / "sheet.pdf")]) == 0
    assert (tmp_path / "sheet.pdf").read_bytes().startswith(b"%PDF")
    pages = sorted(tmp_path.glob("sheet-*.png"))
    found = [barcode.text for page in pages for barcode in _read(Image.open(page).convert("L"))]
    expected = [item.scanned[3:] for item in ITEMS]
    assert sorted(found) == sorted(expected)
