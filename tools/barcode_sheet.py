"""trace-test-sheet: the printable sheet of test barcodes a technician scans at the counter, with what each must do.

    trace-test-sheet --out test-sheet.pdf          # also test-sheet-1.png, test-sheet-2.png, ...

Barcodes are made by zxing-cpp (Code 128, EAN-13, GS1 DataMatrix with FNC1, QR) and checked by reading them
back with the same library in the tests; the expected results are the device's own decoder's (error codes as in
docs/protocol.md). `hil_tests/sheet.py` scans the same texts through a scan-engine adapter.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import zxingcpp
from PIL import Image, ImageDraw, ImageFont

__all__ = ["Item", "ITEMS", "render", "barcode_image", "main"]

GS = "\x1d"
_DPI = 200
_PAGE = (1654, 2339)  # A4 at 200 dpi
_MARGIN = 90
_ROW = 250
_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
          "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True)
class Item:
    key: str
    label_en: str
    label_zh: str
    format: str
    """Code128, EAN13, DataMatrix (GS1, FNC1 first) or QRCode."""
    content: str
    """What is encoded; GS1 items in bracketed form (the encoder writes FNC1s)."""
    scanned: str
    """What a scan engine with AIM identifiers on sends for it (GS as 0x1D)."""
    expect_en: str
    expect_zh: str
    local: str = ""
    """The agent's own verdict before the gateway's: "" for a valid code, "err=N" for an invalid one, or the
    control signal ("mode 2", "control ticket=T0001") for a control barcode."""
    verdict: str = ""
    """The gateway's verdict signal for a scan ("ok", "invalid"); empty for control barcodes."""


ITEMS = [
    Item("digits20", "20-digit trace code (Code 128)", "20位追溯码", "Code128", "81234567890123456789",
         "]C081234567890123456789", "taken, then ok", "已采集, 然后 ok", "", "ok"),
    Item("digits19", "19 digits", "19位数字", "Code128", "8123456789012345678", "]C08123456789012345678",
         "invalid, error 5 (digits_length)", "无效, 错误5 (位数不对)", "err=5", "invalid"),
    Item("ean13", "Retail EAN-13 (not a trace code)", "商品条码EAN-13 (非追溯码)", "EAN13", "6901234567892",
         "]E06901234567892", "invalid, error 7 (commodity_ean)", "无效, 错误7 (商品条码)", "err=7", "invalid"),
    Item("gs1_valid", "GS1 DataMatrix, valid", "GS1 DataMatrix 有效", "DataMatrix",
         "(01)06901234567892(17)301231(10)2AB(21)XYZ123", f"]d2010690123456789217301231102AB{GS}21XYZ123",
         "taken, then ok", "已采集, 然后 ok", "", "ok"),
    Item("gs1_check", "GS1 DataMatrix, wrong check digit", "GS1 校验位错误", "DataMatrix",
         "(01)06901234567893(17)301231(10)2AB(21)XYZ124", f"]d2010690123456789317301231102AB{GS}21XYZ124",
         "invalid, error 14 (gs1_check_digit)", "无效, 错误14 (校验位)", "err=14", "invalid"),
    Item("gs1_expired", "GS1 DataMatrix, expired", "GS1 已过期", "DataMatrix",
         "(01)06901234567892(17)200131(10)2AB(21)XYZ125", f"]d2010690123456789217200131102AB{GS}21XYZ125",
         "invalid, error 21 (expired; needs the clock set)", "无效, 错误21 (已过期, 需时钟已同步)", "err=21",
         "invalid"),
    Item("gs1_no_serial", "GS1 DataMatrix, no serial (AI 21)", "GS1 无序列号", "DataMatrix",
         "(01)06901234567892(17)301231(10)2AB", "]d2010690123456789217301231102AB",
         "invalid, error 18 (gs1_no_serial)", "无效, 错误18 (无序列号)", "err=18", "invalid"),
    Item("ma_valid", "MA code (QR), valid", "MA码 有效", "QRCode",
         "MA.156.M0.100023.10010001.S210512001.L200501.E20280430.C2",
         "]Q1MA.156.M0.100023.10010001.S210512001.L200501.E20280430.C2", "taken, then ok", "已采集, 然后 ok", "",
         "ok"),
    Item("ma_no_serial", "MA code without serial", "MA码 无序列号", "QRCode",
         "MA.156.M0.100023.10010001.L200501.E20280430", "]Q1MA.156.M0.100023.10010001.L200501.E20280430",
         "invalid, error 20 (ma_no_serial)", "无效, 错误20 (无序列号)", "err=20", "invalid"),
    Item("mode_return", "Mode: sale return", "模式: 销售退货", "Code128", "TC:MODE:RETURN", "]C0TC:MODE:RETURN",
         "mode 2 (blinks twice)", "模式2 (闪两次)", "mode 2"),
    Item("mode_purchase", "Mode: purchase / inbound", "模式: 采购入库", "Code128", "TC:MODE:PURCHASE",
         "]C0TC:MODE:PURCHASE", "mode 3", "模式3", "mode 3"),
    Item("mode_adjust", "Mode: stock adjustment (loss, damage)", "模式: 库存变更 (报损等)", "Code128", "TC:MODE:ADJUST",
         "]C0TC:MODE:ADJUST", "mode 7", "模式7", "mode 7"),
    Item("mode_sale", "Mode: sale (back to normal)", "模式: 销售 (恢复)", "Code128", "TC:MODE:SALE",
         "]C0TC:MODE:SALE", "mode 1", "模式1", "mode 1"),
    Item("ticket", "Ticket number T0001", "销售单号 T0001", "Code128", "TC:TKT:T0001", "]C0TC:TKT:T0001",
         "control ticket=T0001", "控制码: 单号", "control ticket=T0001"),
    Item("split", "Split quantity 2 (next scan)", "拆零数量 2 (下一次扫码)", "Code128", "TC:QTY:2", "]C0TC:QTY:2",
         "control split_qty=2", "控制码: 拆零", "control split_qty=2"),
]


_SCALE = {"Code128": 4, "EAN13": 4, "DataMatrix": 10, "QRCode": 5}
"""Pixels per module at 200 dpi: 0.5 mm per DataMatrix module, 0.64 mm per QR module, 0.5 mm per bar module."""


def barcode_image(item: Item, *, scale: int = 0) -> Image.Image:
    """The item's barcode as a PIL image (black on white, quiet zone included)."""
    scale = scale or _SCALE[item.format]
    barcode = zxingcpp.create_barcode(item.content, getattr(zxingcpp.BarcodeFormat, item.format),
                                      **({"gs1": True} if item.format == "DataMatrix" else {}))
    raw = memoryview(cast(Any, barcode.to_image(scale=scale, add_quiet_zones=True)))  # a buffer; its stub says not
    height, width = raw.shape or (0, 0)
    image = Image.frombuffer("L", (width, height), bytes(raw), "raw", "L", 0, 1)
    if item.format in ("Code128", "EAN13"):
        image = image.resize((image.width, 160))
    return image


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default()


def _chinese_font_available() -> bool:
    return any(Path(path).exists() for path in _FONTS[:2])


def render(items: list[Item] | None = None) -> list[Image.Image]:
    """The sheet's pages."""
    items = items or ITEMS
    title, body, small = _font(40), _font(28), _font(22)
    chinese = _chinese_font_available()
    per_page = (_PAGE[1] - 2 * _MARGIN - 120) // _ROW
    pages = []
    for first in range(0, len(items), per_page):
        page = Image.new("L", _PAGE, 255)
        draw = ImageDraw.Draw(page)
        heading = "追溯码扫码枪测试卡 / Scanner test sheet" if chinese else "Scanner test sheet"
        draw.text((_MARGIN, _MARGIN), f"{heading}  ({first // per_page + 1}/{-(-len(items) // per_page)})",
                  font=title, fill=0)
        top = _MARGIN + 100
        for item in items[first:first + per_page]:
            code = barcode_image(item)
            code.thumbnail((760, _ROW - 40))
            page.paste(code, (_MARGIN, top + (_ROW - code.height) // 2))
            left = _MARGIN + 800
            draw.text((left, top + 20), item.label_en, font=body, fill=0)
            if chinese:
                draw.text((left, top + 60), item.label_zh, font=body, fill=0)
            draw.text((left, top + 110), f"expect: {item.expect_en}", font=small, fill=0)
            if chinese:
                draw.text((left, top + 140), f"应显示: {item.expect_zh}", font=small, fill=0)
            shown = item.content if len(item.content) < 46 else item.content[:43] + "..."
            draw.text((left, top + 180), shown, font=small, fill=90)
            draw.line((_MARGIN, top + _ROW - 4, _PAGE[0] - _MARGIN, top + _ROW - 4), fill=200, width=2)
            top += _ROW
        pages.append(page)
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trace-test-sheet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("test-sheet.pdf"), help="PDF; PNG pages go beside it")
    options = parser.parse_args(argv)
    pages = render()
    options.out.parent.mkdir(parents=True, exist_ok=True)
    pages[0].save(options.out, save_all=True, append_images=pages[1:], resolution=_DPI)
    for number, page in enumerate(pages, start=1):
        page.save(options.out.with_name(f"{options.out.stem}-{number}.png"), dpi=(_DPI, _DPI))
    print(f"{options.out} and {len(pages)} PNG pages; print at 100% (A4, {_DPI} dpi)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
