"""Dashboard tables as files: the figures as the page shows them, in CSV and in an .xlsx read back by openpyxl."""

import csv
import io
from datetime import datetime

import openpyxl
import pytest

from gateway.faces import export

ZONE = "Asia/Shanghai"
NOON_MS = 1_795_406_400_000  # 2026-11-23 12:00:00 +08:00 (04:00 UTC)


def _row(**values):
    base = {"institution": "P-A", "institution_name": "第一药房", "terminal": "A1", "coverage": 0.75,
            "valid_scan_rate": 0.0625, "duplicate_rate": 0.0, "consistency_error_rate": None, "swap_rate": 0.125,
            "upload_rate": 1 / 3, "scans": 16, "units_required": 4, "missing_seqs": 0}
    return {**base, **values}


def test_rates_show_one_decimal_rounded_half_up_like_the_page():
    shown = export.shown_table("terminals", [_row()], lang="zh", timezone=ZONE)
    assert shown.headers[:4] == ["机构编码", "机构名称", "终端", "扫码核查率"]
    texts = [cell.text for cell in shown.rows[0]]
    assert texts == ["P-A", "第一药房", "A1", "75.0%", "6.3%", "0.0%", "-", "12.5%", "33.3%", "16", "4", "0"]
    assert [cell.value for cell in shown.rows[0][3:5]] == [0.75, 0.063]


def test_times_are_the_configured_zones_wall_clock_in_each_language():
    alert = {"severity": "high", "type": "repeat_sale", "state": "open", "institution": "P-A", "institution_name": "",
             "terminal": "A1", "count": 2, "last_ms": NOON_MS + 5_999, "detail": "code 1 sold again",
             "detail_zh": "追溯码 1 再次销售", "changed_by": "li.ming"}
    chinese = [cell.text for cell in export.shown_table("alerts", [alert], lang="zh", timezone=ZONE).rows[0]]
    assert chinese == ["严重", "重复销售", "待处理", "P-A", "-", "A1", "2", "2026/11/23 12:00:05", "追溯码 1 再次销售",
                       "li.ming"]
    english = [cell.text for cell in export.shown_table("alerts", [alert], lang="en", timezone=ZONE).rows[0]]
    assert english[:3] == ["high", "Repeat sale", "open"]
    assert english[7:] == ["23/11/2026 12:00:05", "code 1 sold again", "li.ming"]
    utc = export.shown_table("alerts", [alert], lang="zh", timezone="UTC").rows[0][7].text
    assert utc == "2026/11/23 04:00:05"


def test_devices_show_their_connection_and_never_for_no_status():
    device = {"device": "dev-a", "terminal": "A1", "institution": "P-A", "institution_name": "第一药房",
              "online": False, "status_ms": 0, "backlog": 0, "firmware": "", "clock": 0, "missing_seqs": 0}
    texts = [cell.text for cell in export.shown_table("devices", [device], lang="zh", timezone=ZONE).rows[0]]
    assert texts == ["dev-a", "A1", "P-A", "第一药房", "从未", "从未", "0", "-", "未同步", "0"]


def test_commands_show_their_argument_and_answer_as_json_and_the_result_in_chinese():
    command = {"issued_ms": NOON_MS, "issued_by": "ops-li", "device": "dev-a", "kind": "config",
               "argument": {"debounce_ms": 500, "名": 1}, "state": "answered", "result": "applied",
               "result_zh": "已执行", "answer": None}
    chinese = [cell.text for cell in export.shown_table("commands", [command], lang="zh", timezone=ZONE).rows[0]]
    assert chinese == ["2026/11/23 12:00:00", "ops-li", "dev-a", "修改参数", '{"debounce_ms":500,"名":1}', "已应答",
                       "已执行", "-"]
    english = [cell.text for cell in export.shown_table("commands", [command], lang="en", timezone=ZONE).rows[0]]
    assert english[3:7] == ["Change settings", '{"debounce_ms":500,"名":1}', "answered", "applied"]
    rows = [{**command, "argument": argument} for argument in (3, None, {"a": 1}, 12)]
    assert [row["argument"] for row in export.sort_rows(rows, "argument", descending=False, form="json")] == [
        None, 12, 3, {"a": 1}]  # by the text, as the page sorts a JSON column
    assert export.column_format("commands", "argument") == "json" and export.column_format("commands", "x") == ""


def test_sorting_matches_a_click_on_the_column_head():
    rows = [_row(terminal="A", coverage=0.5), _row(terminal="B", coverage=None), _row(terminal="C", coverage=0.5),
            _row(terminal="D", coverage=0.9)]
    up = export.sort_rows(rows, "coverage", descending=False)
    assert [row["terminal"] for row in up] == ["B", "A", "C", "D"]
    down = export.sort_rows(rows, "coverage", descending=True)
    assert [row["terminal"] for row in down] == ["D", "A", "C", "B"]


def test_csv_holds_the_shown_text_with_a_bom_and_no_formula():
    shown = export.shown_table("terminals", [_row(terminal="=HYPERLINK(\"x\")")], lang="zh", timezone=ZONE)
    data = export.csv_bytes(shown)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][2] == "终端" and rows[1][2] == "'=HYPERLINK(\"x\")" and rows[1][3] == "75.0%"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_xlsx_cells_are_typed_and_show_the_same_figures(lang):
    alert = {"severity": "critical", "type": "distant_sale", "state": "acknowledged", "institution": "P-A",
             "institution_name": "第一药房", "terminal": "A1", "count": 1, "last_ms": NOON_MS, "detail": "d",
             "detail_zh": "说明"}
    book = openpyxl.load_workbook(io.BytesIO(export.xlsx_bytes(
        export.shown_table("alerts", [alert], lang=lang, timezone=ZONE), lang=lang)))
    sheet = book.active
    assert sheet.title == export.label("alerts", lang)
    assert [cell.value for cell in sheet[1]][:2] == [export.label("severity", lang), export.label("type", lang)]
    row = [cell for cell in sheet[2]]
    assert row[6].value == 1 and row[7].value == datetime(2026, 11, 23, 12, 0, 0)
    assert row[7].number_format == ("yyyy/mm/dd hh:mm:ss" if lang == "zh" else "dd/mm/yyyy hh:mm:ss")
    rates = openpyxl.load_workbook(io.BytesIO(export.xlsx_bytes(
        export.shown_table("terminals", [_row()], lang=lang, timezone=ZONE), lang=lang))).active
    coverage, valid, missing = rates["D2"], rates["E2"], rates["G2"]
    assert (coverage.value, coverage.number_format) == (0.75, "0.0%")
    assert valid.value == 0.063 and missing.value == "-"
    assert (rates["H1"].value, rates["H2"].value, rates["H2"].number_format) == (
        export.label("swap_rate", lang), 0.125, "0.0%")
    assert rates.freeze_panes == "A2"


def test_both_languages_have_every_word_the_tables_and_alerts_use():
    import json
    from pathlib import Path

    from gateway.domain import alerts

    labels = json.loads((Path(export.__file__).parent / "dashboard_files" / "labels.json").read_text(encoding="utf-8"))
    assert set(labels["zh"]) == set(labels["en"])
    needed = {label for table in export.TABLES for _, label, _ in export.columns(table)} | set(export.TABLES)
    needed |= {f"type_{kind}" for kind in alerts.TYPES} | {f"severity_{level}" for level in alerts.TYPES.values()}
    needed |= {f"state_{state}" for state in alerts.STATES}
    assert needed <= set(labels["zh"]), needed - set(labels["zh"])
