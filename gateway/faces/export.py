"""The dashboard's tables as files (CSV and Excel), with every figure written as the page shows it.

The columns come from dashboard/tables.json and the words from dashboard/labels.json, the files the page itself
reads, and each format below does what app.js does for the screen: a rate is a percentage with one decimal,
rounded half up like JavaScript's toFixed (0.0625 shows 6.3%); a time is the configured zone's wall clock,
YYYY/MM/DD HH:MM:SS in Chinese and DD/MM/YYYY HH:MM:SS in English; a device command's argument or answer is
its JSON without spaces, as JSON.stringify writes it; a missing figure is "-". The browser test compares the
screen with both files cell by cell.

In the .xlsx a rate is the number shown (0.063) formatted 0.0%, a count a number, a time an Excel date-time in
the configured zone, so a supervisor can sum and sort; the CSV holds the shown text. A text cell that a
spreadsheet would run as a formula (it starts with = + - @) is written with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import xlsxwriter  # type: ignore[import-untyped]

__all__ = ["TABLES", "LANGUAGES", "Cell", "Shown", "columns", "column_format", "label", "shown_table", "sort_rows",
           "csv_bytes", "xlsx_bytes"]

_ROOT = Path(__file__).resolve().parent / "dashboard_files"
LANGUAGES = ("zh", "en")
_TIME_LAYOUT = {"zh": "{y}/{mo}/{d} {h}:{mi}:{s}", "en": "{d}/{mo}/{y} {h}:{mi}:{s}"}
_EXCEL_TIME = {"zh": "yyyy/mm/dd hh:mm:ss", "en": "dd/mm/yyyy hh:mm:ss"}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@cache
def _labels() -> dict[str, dict[str, str]]:
    labels: dict[str, dict[str, str]] = json.loads((_ROOT / "labels.json").read_text(encoding="utf-8"))
    return labels


@cache
def _tables() -> dict[str, list[list[str]]]:
    return {name: spec for name, spec in json.loads((_ROOT / "tables.json").read_text(encoding="utf-8")).items()
            if name != "_"}


TABLES = tuple(_tables())
"""The tables the dashboard shows and exports: institutions, terminals, alerts, devices, deadletters."""


def label(key: str, lang: str) -> str:
    """The word for `key` in `lang`, or the key itself (as the page does)."""
    return _labels().get(lang, {}).get(key, key)


def columns(table: str) -> list[list[str]]:
    """[field, label key, format] per column of `table`."""
    return _tables()[table]


def column_format(table: str, key: str) -> str:
    """The format of `table`'s column `key` ("" when it has none)."""
    return next((form for field, _, form in columns(table) if field == key), "")


@dataclass(frozen=True)
class Cell:
    text: str
    """What the page shows."""
    value: Any
    """What the .xlsx holds: the shown text, or the shown number (int, or float for a rate), or a datetime."""
    kind: str
    """text, count, percent or time."""


@dataclass(frozen=True)
class Shown:
    title: str
    headers: list[str]
    rows: list[list[Cell]]


def _percent(value: float | None) -> Cell:
    if value is None:
        return Cell("-", "-", "text")
    tenths = Decimal(value * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return Cell(f"{tenths}%", float(tenths) / 100, "percent")


def _time(ms: int | None, lang: str, timezone: str) -> Cell:
    if not ms:
        return Cell(label("never", lang), label("never", lang), "text")
    local = datetime.fromtimestamp(ms // 1000, ZoneInfo(timezone))
    text = _TIME_LAYOUT[lang].format(y=f"{local.year:04d}", mo=f"{local.month:02d}", d=f"{local.day:02d}",
                                     h=f"{local.hour:02d}", mi=f"{local.minute:02d}", s=f"{local.second:02d}")
    return Cell(text, local.replace(tzinfo=None), "time")


def _json(value: object) -> str:
    """A command's argument or answer as the page writes it (JSON.stringify: no spaces)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text(value: object) -> Cell:
    text = "-" if value is None or value == "" else str(value).replace("\x1d", "<GS>")
    return Cell(text, text, "text")


def _cell(row: dict[str, Any], key: str, form: str, lang: str, timezone: str) -> Cell:
    value = row.get(key)
    if form == "percent":
        return _percent(value)
    if form == "count":
        return Cell("-", "-", "text") if value is None else Cell(str(int(value)), int(value), "count")
    if form == "time":
        return _time(value, lang, timezone)
    if form.startswith("label:"):
        return _text(label(form.removeprefix("label:") + str(value), lang))
    if form == "connection":
        return _text(label("online" if value else "offline" if row.get("status_ms") else "never", lang))
    if form == "localized":
        return _text(row.get(f"{key}_zh") or value if lang == "zh" else value)
    if form == "json":
        return _text(None if value is None else _json(value))
    return _text(value)


def shown_table(table: str, rows: list[dict[str, Any]], *, lang: str, timezone: str) -> Shown:
    """`rows` (as the API answers them) as the page shows `table` in `lang`."""
    spec = columns(table)
    return Shown(title=label(table, lang), headers=[label(name, lang) for _, name, _ in spec],
                 rows=[[_cell(row, key, form, lang, timezone) for key, _, form in spec] for row in rows])


def sort_rows(rows: list[dict[str, Any]], key: str, *, descending: bool, form: str = "") -> list[dict[str, Any]]:
    """Sorted as a click on the column head sorts the page: by the raw value (a `json` column: by its text, as
    its values may be numbers or objects), a missing one first, stable."""
    present = [row for row in rows if row.get(key) is not None]
    missing = [row for row in rows if row.get(key) is None]
    value: Any = (lambda row: _json(row[key])) if form == "json" else (lambda row: row[key])
    if descending:  # the page reverses its comparison: equal rows keep their order, missing ones go last
        return sorted(present, key=value, reverse=True) + missing
    return missing + sorted(present, key=value)


def _guarded(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) and text != "-" else text


def csv_bytes(shown: Shown) -> bytes:
    """UTF-8 with a byte-order mark (Excel then reads the Chinese), CRLF lines, every field quoted."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(shown.headers)
    for row in shown.rows:
        writer.writerow([_guarded(cell.text) for cell in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def xlsx_bytes(shown: Shown, *, lang: str) -> bytes:
    """One worksheet named after the table: a bold, frozen head row, then the rows with typed cells."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                     "strings_to_numbers": False})
    sheet = book.add_worksheet(shown.title[:31])
    head = book.add_format({"bold": True, "bg_color": "#F6F8FA"})
    formats = {"percent": book.add_format({"num_format": "0.0%"}),
               "time": book.add_format({"num_format": _EXCEL_TIME[lang]}), "count": None, "text": None}
    widths = [len(text) * 2 + 2 for text in shown.headers]
    sheet.write_row(0, 0, shown.headers, head)
    for number, row in enumerate(shown.rows, start=1):
        for column, cell in enumerate(row):
            if cell.kind == "time":
                sheet.write_datetime(number, column, cell.value, formats["time"])
            elif cell.kind == "text":
                sheet.write_string(number, column, _guarded(cell.value))
            else:
                sheet.write_number(number, column, cell.value, formats[cell.kind])
            widths[column] = max(widths[column], min(60, len(cell.text) + 2))
    for column, width in enumerate(widths):
        sheet.set_column(column, column, width)
    sheet.freeze_panes(1, 0)
    book.close()
    return out.getvalue()
