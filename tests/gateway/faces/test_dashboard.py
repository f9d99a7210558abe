"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a gateway process fed by a
scenario with known rates: the tables in Chinese with institution names, colours, filters and a date range, an
alert acknowledged from the page (and who did it), the per-terminal trends chart, the outbox and its dead
letters, the device command audit log and an admin's command form, CSV and Excel exports compared cell by cell
with the screen, the language switch, a new scan showing up without a reload, and the page at a phone's 390 px
without sideways scrolling. Saves artifacts/dashboard.png (desktop, in English) and
artifacts/dashboard-390.png (the phone, in Chinese)."""

import csv
import io
import os
import re
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from scenario import Scenario, code
from stores import fresh_database

from gateway.domain import control
from gateway.store.opening import open_store
from gateway.wire.protocol import Verdict
from harness.gateway_process import READ_TOKEN, WRITE_TOKEN, GatewayProcess, forward_toml
from harness.traffic import publish_all
from tcagent.codec import codes, cose, event

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None or not sys.modules.get("playwright") and not __import__("importlib").util.find_spec("playwright"):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs chromium and playwright for the dashboard test (.ci/run installs them)")
    pytest.skip("chromium or playwright not installed (apt-get install chromium; pip install playwright)",
                allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

HOUR = 3_600_000
ZONE = ZoneInfo("Asia/Shanghai")
SHOWN_TIME = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}")
REFUSED = "platform refused: 追溯码与药品不符"
SETTINGS = {"debounce_ms": 500, "ack_timeout_s": 10}
COMMANDS = [(60_000, "config", SETTINGS, ("answered", "applied", '{"debounce_ms": 500, "ack_timeout_s": 10}')),
            (120_000, "mode", 3, ("answered", "refused: replayed id", "1")),
            (180_000, "reboot", None, ("expired", "", ""))]
"""(ms after the scenario's start, command, argument, (state, result, answer)) of device dev-a, issued by ops-li."""


def _signed_now(key):
    """A sale event of device bench-0000, seq 1, made now, signed by the firmware's own code."""
    scan = codes.decode(code(500).encode())
    payload = event.encode("bench-0000", 1, 1, time.time_ns() // 1_000_000, 1000, 1, 1, scan, "", 0)
    return cose.sign(cose.MacKey(key), payload, b"bench-0000")


@pytest.fixture
def gateway(tmp_path, broker):
    (tmp_path / "gateway").mkdir()
    names = forward_toml("", {"P-A": "第一药房", "P-B": "第二药房"})  # names only: no platform, no forwarding
    process = GatewayProcess(tmp_path / "gateway", broker, database=fresh_database(), extra_toml=names)
    base = (time.time_ns() // 1_000_000) - 3 * HOUR
    world = Scenario(tmp_path, location=process.location)
    world.counter("dev-a", "A1", "P-A")
    world.counter("dev-a2", "A2", "P-A")
    world.counter("dev-b", "B1", "P-B")
    world.ticket("A1", "T1", base, ("XA01", 2), ("XB02", 5, True))
    assert world.scan("dev-a", code(1), base + 10_000, ticket="T1") == Verdict.OK
    assert world.scan("dev-a", code(2), base + 20_000, ticket="T1") == Verdict.OK
    assert world.scan("dev-a", code(100, "8654321"), base + 30_000, ticket="T1", split=5) == Verdict.OK
    world.ticket("A1", "T2", base + HOUR, ("XA01", 1), ("XD04", 1))
    world.scan("dev-a", "6901234567892", base + HOUR + 60_000)
    world.ticket("A2", "U1", base + 2 * HOUR, ("XA01", 1))
    world.scan("dev-a2", code(3), base + 2 * HOUR)  # scanned before the customer paid (a box after is the next one's)
    mismatch = world.scan("dev-a2", code(101, "8654321"), base + 2 * HOUR + 120_000, ticket="U1")
    assert mismatch == Verdict.PRODUCT_MISMATCH
    world.scan("dev-a2", code(4), base + 2 * HOUR + 180_000, ticket="U2")
    world.ticket("A2", "U2", base + 2 * HOUR + 240_000, ("XA01", 1))
    assert world.scan("dev-b", code(1), base + 2 * HOUR + 300_000) == Verdict.DUPLICATE_SALE
    world.close()
    store = open_store(process.location)  # two rows as the forwarder leaves what the platform refused
    with store.transaction() as tx:
        tx.write("UPDATE outbox SET state = 'dead', error = ?, changed_ms = ? WHERE id IN "
                 "(SELECT id FROM outbox ORDER BY id LIMIT 2)", (REFUSED, base + 3 * HOUR))
        for at_ms, kind, argument, settled in COMMANDS:  # the audit log as answers and a gateway outage left it
            row = control.issue(tx, "dev-a", kind, argument, by="ops-li", now_ms=base + at_ms)
            tx.write("UPDATE commands SET state = ?, result = ?, answer = ? WHERE id = ?", (*settled, row.id))
    store.close()
    process.live_key = os.urandom(32)
    process.register("bench-0000", process.live_key, terminal="L1", institution="P-L")
    process.start()
    yield process
    process.stop()


def _screen(page, table):
    """The cells of a table as the page shows them, row by row."""
    rows = page.locator(f"#{table} tbody tr")
    return [rows.nth(index).locator("td").all_inner_texts() for index in range(rows.count())]


def _by(page, table, column):
    return {row[column]: row for row in _screen(page, table)}


def _download(page, table, kind):
    with page.expect_download() as download:
        page.locator(f"button.export[data-table={table}][data-format={kind}]").click()
    return Path(download.value.path())


def _csv(page, table):
    return list(csv.reader(io.StringIO(_download(page, table, "csv").read_text(encoding="utf-8-sig"))))


def _xlsx(page, table, lang):
    """The sheet's cells written as Excel shows them with their number formats."""
    sheet = openpyxl.load_workbook(io.BytesIO(_download(page, table, "xlsx").read_bytes())).active

    def shown(cell):
        if isinstance(cell.value, datetime):
            return cell.value.strftime("%Y/%m/%d %H:%M:%S" if lang == "zh" else "%d/%m/%Y %H:%M:%S")
        if cell.number_format == "0.0%":
            return f"{cell.value * 100:.1f}%"
        return str(cell.value)
    return [[shown(cell) for cell in row] for row in sheet.iter_rows()]


def _same_as_screen(page, table, exported):
    """The export's head and rows are the screen's (the page's own extra columns left aside)."""
    heads = page.locator(f"#{table} thead th[data-key]").all_inner_texts()
    width = len(heads)
    assert [head.rstrip(" ▲▼") for head in heads] == exported[0], table
    assert [row[:width] for row in _screen(page, table)] == exported[1:], table


def test_the_dashboard_shows_the_scenario_and_follows_it_live(gateway, broker, tmp_path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        page.goto(f"http://127.0.0.1:{gateway.api_port}/dashboard/?refresh_ms=1000")
        page.fill("#token", "wrong")
        page.click("#login")
        expect(page.locator("#login-error")).to_have_text("访问令牌无效，请重新输入")
        page.fill("#token", WRITE_TOKEN)
        page.click("#login")
        expect(page.locator("#user")).to_have_text("用户: write-token (管理员)")  # the legacy write token is admin
        page.select_option("#period", "24")
        expect(page.locator("#terminals tbody tr")).to_have_count(3, timeout=15000)
        # the 24 h table, not one drawn from an earlier answer: A1's coverage is there
        expect(page.locator("#terminals tbody tr", has_text="A1").locator("td").nth(3)).to_have_text("75.0%",
                                                                                                 timeout=15000)

        terminals = _by(page, "terminals", 2)  # code, name, terminal, 6 rates, scans, units, missing
        assert terminals["A1"][:9] == ["P-A", "第一药房", "A1", "75.0%", "75.0%", "0.0%", "0.0%", "0.0%", "0.0%"]
        assert terminals["A2"][3] == "100.0%" and terminals["A2"][6] == terminals["A2"][7] == "33.3%"  # and 串换率
        assert terminals["B1"][:4] == ["P-B", "第二药房", "B1", "-"] and terminals["B1"][5] == "100.0%"
        assert "bad" in page.locator("#terminals tbody tr", has_text="A1").locator("td").nth(3).get_attribute("class")
        assert "bad" in page.locator("#terminals tbody tr", has_text="A2").locator("td").nth(7).get_attribute("class")
        institutions = _by(page, "institutions", 0)
        assert institutions["P-A"][1:3] == ["第一药房", "83.3%"] and institutions["P-A"][8] == "7"

        alerts = page.locator("#alerts tbody tr")
        expect(alerts).to_have_count(3, timeout=15000)  # cross-institution sale, mismatch, unscanned line
        shown = _by(page, "alerts", 1)
        assert set(shown) == {"跨机构销售", "药品串换", "无码销售"}
        assert shown["药品串换"][:5] == ["严重", "药品串换", "待处理", "P-A", "第一药房"]
        assert SHOWN_TIME.fullmatch(shown["药品串换"][7])
        assert shown["药品串换"][8] == (f"销售单 U1 各行追溯码已齐，另扫了 XB02（追溯码 {code(101, '8654321')}），"
                                       "该药品不在销售单上（串换）")
        assert shown["跨机构销售"][8] == f"追溯码 {code(1)} 已在 P-A 销售，现又在 P-B 销售"
        target = alerts.filter(has_text="药品串换")
        target.locator("a.evidence").click()  # the scan and the ticket behind the alert
        expect(target.locator(".proof")).to_contain_text("dev-a2#2")
        expect(target.locator(".proof")).to_contain_text("U1 A2")
        target.locator("button.ack").click()
        expect(page.locator("#alerts tbody tr", has_text="药品串换")).to_contain_text("已确认")
        [mismatch] = [alert for alert in gateway.api("GET", "/api/v1/alerts?state=live")[1]["alerts"]
                      if alert["type"] == "product_mismatch"]
        assert mismatch["state"] == "acknowledged" and mismatch["note"] == "dashboard"
        assert mismatch["changed_by"] == "write-token"
        assert _by(page, "alerts", 1)["药品串换"][9] == "write-token"  # who changed it (处理人)

        expect(page.locator("#outbox-dead dd")).to_have_text("2")  # the outbox and its dead letters
        assert page.locator("#outbox-pending dt").inner_text() == "待上传"
        assert page.locator("#outbox-held dt").inner_text() == "暂缓（等待销售单计时）"
        assert page.locator("#outbox-withdrawn dd").inner_text() == "0"
        dead = _screen(page, "deadletters")
        assert len(dead) == 2 and {row[1:3] for row in map(tuple, dead)} == {("P-A", "第一药房")}
        assert {row[8] for row in dead} == {"平台拒收：追溯码与药品不符"}

        canvas = page.locator("#chart canvas")  # one line per terminal of the filters
        expect(canvas).to_have_count(1, timeout=10000)
        expect(canvas).to_be_visible()
        legend = page.locator("#chart .u-legend .u-series th").all_inner_texts()
        assert [name.strip() for name in legend[1:]] == ["A1", "A2", "B1"]
        width, height = page.eval_on_selector("#chart canvas", "canvas => [canvas.width, canvas.height]")
        assert width > 200 and height > 100

        for table in ("institutions", "terminals", "alerts", "devices", "deadletters"):
            _same_as_screen(page, table, _csv(page, table))
        _same_as_screen(page, "terminals", _xlsx(page, "terminals", "zh"))
        _same_as_screen(page, "alerts", _xlsx(page, "alerts", "zh"))
        page.locator("#terminals th", has_text="扫码核查率").click()  # sorted on screen, sorted in the file
        page.locator("#terminals th", has_text="扫码核查率").click()
        assert [row[2] for row in _screen(page, "terminals")] == ["A2", "A1", "B1"]
        _same_as_screen(page, "terminals", _csv(page, "terminals"))

        page.select_option("#institution", "P-B")  # filters: one institution
        expect(page.locator("#terminals tbody tr")).to_have_count(1, timeout=10000)
        assert page.locator("#terminal option").all_inner_texts() == ["全部", "B1"]
        assert "P-B 第二药房" in page.locator("#institution option").all_inner_texts()
        expect(page.locator("#alerts tbody tr")).to_have_count(1)
        _same_as_screen(page, "terminals", _csv(page, "terminals"))
        page.select_option("#institution", "")
        page.select_option("#period", "range")  # a range of days: yesterday and today
        today = datetime.now(ZONE).date()
        page.fill("#from", str(today - timedelta(days=1)))
        page.fill("#to", str(today))
        page.dispatch_event("#to", "change")
        expect(page.locator("#terminals tbody tr")).to_have_count(3, timeout=10000)
        assert _by(page, "terminals", 2)["A1"][3] == "75.0%"
        _same_as_screen(page, "institutions", _csv(page, "institutions"))

        publish_all(broker.port, [("bench-0000", 1, _signed_now(gateway.live_key))])
        expect(page.locator("#terminals tbody tr", has_text="L1").locator("td").nth(9)).to_have_text(
            "1", timeout=15000)
        assert _by(page, "terminals", 2)["L1"][:2] == ["P-L", "-"]  # no name configured for P-L

        page.click("#language")
        expect(page.locator("h1")).to_have_text("Traceability-code scan supervision")
        expect(page.locator("#alerts tbody tr", has_text="Product mismatch")).to_contain_text("acknowledged")
        english = _csv(page, "alerts")
        assert english[0][:3] == ["Severity", "Type", "State"] and english[0][9] == "Changed by"
        _same_as_screen(page, "alerts", english)
        expect(page.locator("#user")).to_have_text("User: write-token (admin)")
        _same_as_screen(page, "deadletters", _xlsx(page, "deadletters", "en"))
        overflow = page.evaluate("() => [document.documentElement.scrollWidth, ...[...document.querySelectorAll("
                                 "'.wide')].map((box) => box.scrollWidth - box.clientWidth)]")
        assert overflow[0] <= 1400 and max(overflow[1:]) <= 0, overflow  # no table scrolls sideways on a desktop
        (ROOT / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "artifacts" / "dashboard.png"), full_page=True)
        browser.close()


def test_the_command_audit_log_and_an_admins_form(gateway):
    """In a page of its own: Chromium stops a page's downloads after about ten."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        page.goto(f"http://127.0.0.1:{gateway.api_port}/dashboard/?refresh_ms=1000")
        page.fill("#token", WRITE_TOKEN)
        page.click("#login")
        expect(page.locator("#commands tbody tr")).to_have_count(3, timeout=15000)
        commands = _by(page, "commands", 3)  # the audit log, newest first: issued, by, device, command, ...
        assert list(commands) == ["重启", "切换业务模式", "修改参数"]
        assert SHOWN_TIME.fullmatch(commands["修改参数"][0])
        assert commands["修改参数"][1:] == ["ops-li", "dev-a", "修改参数", '{"debounce_ms":500,"ack_timeout_s":10}',
                                         "已应答", "已执行", '{"debounce_ms":500,"ack_timeout_s":10}']
        assert commands["切换业务模式"][4:] == ["3", "已应答", "拒绝：指令编号不新（防重放）", "1"]
        assert commands["重启"][4:] == ["-", "已过期（网关未运行）", "-", "-"]
        result = page.locator("#commands tbody tr", has_text="修改参数").locator("td").nth(6)
        assert "good" in result.get_attribute("class")
        expect(page.locator("#control")).to_be_visible()  # an admin's form, with the devices to choose from
        expect(page.locator("#control-device option")).to_have_count(4)
        assert page.locator("#control-device option").all_inner_texts() == ["bench-0000", "dev-a", "dev-a2", "dev-b"]
        page.select_option("#control-kind", "config")
        assert page.locator("#control-hint").inner_text().startswith("如 debounce_ms=500")
        page.fill("#control-argument", "debounce_ms=fast")
        page.click("#control-send")
        expect(page.locator("#control-result")).to_have_text("出错: 参数格式不对")  # refused before it is sent
        _same_as_screen(page, "commands", _xlsx(page, "commands", "zh"))
        page.locator("#commands th", has_text="参数").click()  # a column of JSON sorts by its text, as in the file
        assert [row[4] for row in _screen(page, "commands")] == ["-", "3", '{"debounce_ms":500,"ack_timeout_s":10}']
        _same_as_screen(page, "commands", _csv(page, "commands"))
        page.click("#language")
        expect(page.locator("#commands tbody tr").first).to_contain_text("expired")
        assert _by(page, "commands", 3)["Set mode"][6] == "refused: replayed id"
        _same_as_screen(page, "commands", _xlsx(page, "commands", "en"))
        browser.close()


WIDTHS = ("() => [document.documentElement.scrollWidth, document.body.scrollWidth, "
          "Math.max(...[...document.querySelectorAll('body *')].map((node) => node.getBoundingClientRect().right))]")
"""The page's widths and the rightmost edge of anything on it, in CSS pixels."""


def test_a_phone_reads_it_without_sideways_scrolling(gateway):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                has_touch=True, locale="zh-CN")  # a manager's phone
        page.goto(f"http://127.0.0.1:{gateway.api_port}/dashboard/")
        page.fill("#token", WRITE_TOKEN)  # an admin: the device command form shown too
        page.click("#login")
        page.select_option("#period", "range")  # the widest form: both day pickers shown
        today = datetime.now(ZONE).date()
        page.fill("#from", str(today - timedelta(days=1)))
        page.fill("#to", str(today))
        page.dispatch_event("#to", "change")
        expect(page.locator("#terminals tbody tr")).to_have_count(3, timeout=15000)
        expect(page.locator("#alerts tbody tr")).to_have_count(3, timeout=15000)
        expect(page.locator("#chart canvas")).to_have_count(1, timeout=10000)
        page.locator("#alerts a.evidence").first.click()
        expect(page.locator("#alerts .proof")).to_have_count(1, timeout=10000)
        expect(page.locator("#commands tbody tr")).to_have_count(3, timeout=10000)
        expect(page.locator("#control")).to_be_visible()
        page.select_option("#control-kind", "mode")  # the longest hint
        widths = page.evaluate(WIDTHS)
        assert max(widths) <= 390, widths
        label = page.evaluate("() => getComputedStyle(document.querySelector('#terminals tbody td:nth-child(4)'), "
                              "'::before').content")  # in one call: the page redraws its tables every 5 s
        assert label == '"扫码核查率"'
        command = page.evaluate("() => [...document.querySelectorAll('#commands tbody tr:first-child td')].map("
                                "(cell) => getComputedStyle(cell, '::before').content + ' ' + cell.innerText)")
        assert command[5] == '"状态" 已过期（网关未运行）', command
        (ROOT / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "artifacts" / "dashboard-390.png"), full_page=True)
        page.click("#language")  # English words are longer
        expect(page.locator("#control-hint")).to_contain_text("7 stock adjustment")
        expect(page.locator("#commands tbody tr").first).to_contain_text("expired")
        widths = page.evaluate(WIDTHS)
        assert max(widths) <= 390, widths
        browser.close()


def test_a_read_token_can_look_but_not_acknowledge_or_send_commands(gateway):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{gateway.api_port}/")
        page.click("#login")
        expect(page.locator("#login-error")).to_have_text("请输入访问令牌")
        page.fill("#token", READ_TOKEN)
        page.click("#login")
        expect(page.locator("#user")).to_have_text("用户: read-token (查看)")
        page.select_option("#period", "24")
        expect(page.locator("#alerts button.ack").first).to_be_visible(timeout=15000)
        expect(page.locator("#commands tbody tr")).to_have_count(3)  # a reader sees the audit log, not the form
        expect(page.locator("#control")).to_be_hidden()
        page.locator("#alerts button.ack").first.click()
        expect(page.locator("#error")).to_have_text("需要“处理告警”或管理员权限才能修改告警")
        browser.close()
