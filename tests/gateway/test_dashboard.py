"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a gateway process fed by a
scenario with known rates: the tables, colours, an alert acknowledged from the page, the chart, CSV export, the
language switch, and a new scan showing up without a reload. Saves a screenshot to artifacts/dashboard.png."""

import csv
import io
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from scenario import Scenario, code
from stores import fresh_database

from gateway.protocol import Verdict
from tcagent import codes, cose, event
from tools.bench_ingest import publish_all
from tools.gateway_process import READ_TOKEN, WRITE_TOKEN, GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if CHROMIUM is None or not sys.modules.get("playwright") and not __import__("importlib").util.find_spec("playwright"):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs chromium and playwright for the dashboard test (.ci/run installs them)")
    pytest.skip("chromium or playwright not installed (apt-get install chromium; pip install playwright)",
                allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

HOUR = 3_600_000


def _signed_now(key):
    """A sale event of device bench-0000, seq 1, made now, signed by the firmware's own code."""
    scan = codes.decode(code(500).encode())
    payload = event.encode("bench-0000", 1, 1, time.time_ns() // 1_000_000, 1000, 1, 1, scan, "", 0)
    return cose.sign(cose.MacKey(key), payload, b"bench-0000")


@pytest.fixture
def gateway(tmp_path, broker):
    (tmp_path / "gateway").mkdir()
    process = GatewayProcess(tmp_path / "gateway", broker, database=fresh_database())
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
    process.live_key = os.urandom(32)
    process.register("bench-0000", process.live_key, terminal="L1", institution="P-L")
    process.start()
    yield process
    process.stop()


def _cells(page, table):
    rows = page.locator(f"#{table} tbody tr")
    return {row[1] if table == "terminals" else row[0]: row
            for row in (rows.nth(index).locator("td").all_inner_texts() for index in range(rows.count()))}


def test_the_dashboard_shows_the_scenario_and_follows_it_live(gateway, broker, tmp_path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        page.goto(f"http://127.0.0.1:{gateway.api_port}/dashboard/?refresh_ms=1000")
        page.fill("#token", WRITE_TOKEN)
        page.click("#login")
        page.select_option("#period", "24")
        expect(page.locator("#terminals tbody tr")).to_have_count(3, timeout=15000)

        terminals = _cells(page, "terminals")  # institution, terminal, 5 rates, scans, units, missing
        assert terminals["A1"][2:7] == ["75.0%", "75.0%", "0.0%", "0.0%", "0.0%"]
        assert terminals["A2"][2] == "100.0%" and terminals["A2"][5] == "33.3%"
        assert terminals["B1"][2] == "-" and terminals["B1"][4] == "100.0%"
        assert "bad" in page.locator("#terminals tbody tr", has_text="A1").locator("td").nth(2).get_attribute("class")
        institutions = _cells(page, "institutions")
        assert institutions["P-A"][1] == "83.3%" and institutions["P-A"][6] == "7"

        page.locator("#terminals th", has_text="终端").click()  # sort by terminal, descending on a second click
        page.locator("#terminals th", has_text="终端").click()
        assert page.locator("#terminals tbody tr").first.locator("td").nth(1).inner_text() == "B1"

        alerts = page.locator("#alerts tbody tr")
        expect(alerts).to_have_count(3, timeout=15000)  # cross-institution sale, mismatch, unscanned line
        target = alerts.filter(has_text="product_mismatch")
        target.locator("a.evidence").click()  # the scan and the ticket behind the alert
        expect(target.locator(".proof")).to_contain_text("dev-a2#2")
        expect(target.locator(".proof")).to_contain_text("U1 A2")
        target.locator("button.ack").click()
        expect(page.locator("#alerts tbody tr", has_text="product_mismatch")).to_contain_text("已确认")
        [mismatch] = [alert for alert in gateway.api("GET", "/api/v1/alerts?state=live")[1]["alerts"]
                      if alert["type"] == "product_mismatch"]
        assert mismatch["state"] == "acknowledged" and mismatch["note"] == "dashboard"

        page.select_option("#chart-terminal", "A1")
        canvas = page.locator("#chart canvas")
        expect(canvas).to_have_count(1, timeout=10000)
        expect(canvas).to_be_visible()
        width, height = page.eval_on_selector("#chart canvas", "canvas => [canvas.width, canvas.height]")
        assert width > 200 and height > 100

        with page.expect_download() as download:
            page.locator("button.csv[data-table=terminals]").click()
        text = Path(download.value.path()).read_text(encoding="utf-8-sig")
        exported = list(csv.reader(io.StringIO(text)))
        assert exported[0][:3] == ["机构编码", "终端", "扫码核查率"] and len(exported) == 4

        publish_all(broker.port, [("bench-0000", 1, _signed_now(gateway.live_key))])
        expect(page.locator("#terminals tbody tr", has_text="L1")).to_have_count(1, timeout=15000)
        assert _cells(page, "terminals")["L1"][7] == "1"

        page.click("#language")
        expect(page.locator("h1")).to_have_text("Traceability-code scan supervision")
        (ROOT / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "artifacts" / "dashboard.png"), full_page=True)
        browser.close()


def test_a_read_token_can_look_but_not_acknowledge(gateway):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{gateway.api_port}/")
        page.fill("#token", "wrong")
        page.click("#login")
        expect(page.locator("#login-error")).to_contain_text("unknown token")
        page.fill("#token", READ_TOKEN)
        page.click("#login")
        page.select_option("#period", "24")
        expect(page.locator("#alerts button.ack").first).to_be_visible(timeout=15000)
        page.locator("#alerts button.ack").first.click()
        expect(page.locator("#error")).to_have_text("需要写入令牌才能修改告警")
        browser.close()
