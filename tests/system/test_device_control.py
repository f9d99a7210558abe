"""Device control end to end: the firmware on the micropython executable, real Mosquitto, the gateway process.

An admin (a named user made with the CLI) sends mode, config, resend and reboot from the API and the CLI; the
device applies each, answers it signed on tc/v1/<dev>/res, and the audit log shows who, what, and the answer."""

import json
import subprocess

from harness.gateway_process import api_call
from system.fixtures import wait_until
from tools.paths import installed

GS1 = b"]d2010690123456789217261200102AB\x1d21XYZ123"


def cli(gateway, *arguments):
    return subprocess.run([installed("trace-gateway") or "trace-gateway", "--config", str(gateway.config),
                           *arguments], capture_output=True, text=True, timeout=60)


def add_user(gateway, name, role):
    done = cli(gateway, "users", "add", name, "--role", role)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


def call(gateway, token, method, path, body=None):
    return api_call(gateway.api_port, method, path, token, None if body is None else json.dumps(body).encode())


def answered(gateway, token, row_id, timeout=20):
    found = {}

    def done():
        found.update(call(gateway, token, "GET", f"/api/v1/commands/{row_id}")[1])
        return found.get("state") == "answered"

    assert wait_until(done, timeout, step=0.2), found
    return found


def test_an_admin_controls_a_device_and_the_audit_log_keeps_who_what_and_the_answer(gateway, make_device,
                                                                                    device_key):
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device()
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    admin = add_user(gateway, "ops-li", "admin")
    viewer = add_user(gateway, "viewer", "read")

    status, body = call(gateway, viewer, "POST", "/api/v1/commands", {"device": "dev-0001", "command": "reboot"})
    assert status == 403 and "admin" in body["error"]
    status, queued = call(gateway, admin, "POST", "/api/v1/commands",
                          {"device": "dev-0001", "command": "mode", "argument": 3})
    assert status == 202 and queued["state"] == "queued" and queued["issued_by"] == "ops-li"
    device.wait_for(r"^signal mode 3$", timeout=15)
    mode = answered(gateway, admin, queued["id"])
    assert (mode["result"], mode["answer"], mode["device_last_id"]) == ("applied", 3, mode["command_id"])

    done = cli(gateway, "command", "dev-0001", "config", "debounce_ms=500", "ack_timeout_s=4")
    assert done.returncode == 0, done.stderr
    assert "dev-0001 answered applied" in done.stdout and '"debounce_ms": 500' in done.stdout

    device.scan(GS1)
    device.wait_for(r"^signal ok seq=1$", timeout=15)
    done = cli(gateway, "command", "dev-0001", "resend", "1")
    assert done.returncode == 0 and "answered applied: 1" in done.stdout, done.stdout + done.stderr
    assert wait_until(lambda: gateway.count("dev-0001") == 1 and _duplicates(gateway) >= 1, 15)

    refused = cli(gateway, "command", "dev-0001", "mode", "9")
    assert refused.returncode != 0 and "mode must be a whole number 1-7" in refused.stderr

    status, queued = call(gateway, admin, "POST", "/api/v1/commands", {"device": "dev-0001", "command": "reboot"})
    assert status == 202
    reboot = answered(gateway, admin, queued["id"])
    assert reboot["result"] == "applied" and reboot["answer"] is None
    assert wait_until(lambda: not device.alive(), 10) and device.process.returncode == 75  # after its answer

    listed = json.loads(cli(gateway, "commands", "--device", "dev-0001", "--json").stdout)
    assert [(row["kind"], row["state"], row["result"]) for row in listed] == [
        ("reboot", "answered", "applied"), ("resend", "answered", "applied"), ("config", "answered", "applied"),
        ("mode", "answered", "applied")]
    assert [row["issued_by"] for row in listed][::3] == ["ops-li", "ops-li"]
    assert all(row["issued_by"].startswith("cli:") for row in listed[1:3])
    assert listed[2]["answer"]["debounce_ms"] == 500 and listed[2]["argument"] == {"debounce_ms": 500,
                                                                                   "ack_timeout_s": 4}
    table = cli(gateway, "commands").stdout
    assert "ops-li" in table and "reboot" in table and "applied" in table
    assert gateway.quarantine() == []


def test_a_command_for_a_device_that_is_away_is_not_answered_and_says_so(gateway, device_key):
    gateway.register("dev-0001", device_key)
    gateway.start()
    done = cli(gateway, "command", "dev-0001", "mode", "2", "--wait", "3")
    assert done.returncode == 1 and "the device has not answered" in done.stderr
    listed = json.loads(cli(gateway, "commands", "--json").stdout)
    assert listed[0]["state"] == "sent" and listed[0]["result"] == ""


def _duplicates(gateway):
    with gateway.store() as store:
        return store.query("SELECT duplicates FROM device_state WHERE device = 'dev-0001'")[0][0]


def test_the_dashboard_lets_an_admin_send_a_command_and_shows_the_answer(gateway, make_device, device_key):
    """In Chromium (skipped where the dashboard test is: no chromium or playwright outside CI)."""
    import os
    import shutil

    import pytest

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI needs chromium and playwright for the dashboard tests (.ci/run installs them)")
        pytest.skip("chromium or playwright not installed")
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device()
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    admin, viewer = add_user(gateway, "ops-wang", "admin"), add_user(gateway, "viewer", "read")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(f"http://127.0.0.1:{gateway.api_port}/dashboard/?refresh_ms=1000")
        page.fill("#token", viewer)
        page.click("#login")
        expect(page.locator("#user")).to_have_text("用户: viewer (查看)")
        expect(page.locator("#control")).to_be_hidden()  # a reader sees the audit log, not the controls
        page.click("#logout")
        page.fill("#token", admin)
        page.click("#login")
        expect(page.locator("#user")).to_have_text("用户: ops-wang (管理员)")
        expect(page.locator("#control-device option")).to_have_count(1, timeout=15000)
        page.select_option("#control-kind", "mode")
        page.fill("#control-argument", "5")
        page.click("#control-send")
        expect(page.locator("#control-result")).to_have_text("切换业务模式 dev-0001: 已应答 — 已执行 5", timeout=20000)
        device.wait_for(r"^signal mode 5$", timeout=5)
        row = page.locator("#commands tbody tr").first
        expect(row).to_contain_text("ops-wang")
        expect(row).to_contain_text("已应答")
        page.set_viewport_size({"width": 390, "height": 844})  # on a phone, in English
        page.click("#language")
        page.once("dialog", lambda dialog: dialog.accept())  # a reboot asks first
        page.select_option("#control-kind", "reboot")
        page.click("#control-send")
        expect(page.locator("#control-result")).to_have_text("Reboot dev-0001: answered — applied", timeout=20000)
        expect(page.locator("#commands tbody tr").first).to_contain_text("answered")
        widths = page.evaluate("() => [document.documentElement.scrollWidth, Math.max(...[...document."
                               "querySelectorAll('body *')].map((node) => node.getBoundingClientRect().right))]")
        assert max(widths) <= 390, widths
        browser.close()
    assert wait_until(lambda: not device.alive(), 10) and device.process.returncode == 75
    with gateway.store() as store:
        rows = store.query("SELECT issued_by, kind, argument, result FROM commands ORDER BY id")
    assert rows == [("ops-wang", "mode", "5", "applied"), ("ops-wang", "reboot", "null", "applied")]


def test_a_provisioned_device_may_answer_through_the_brokers_acl(tmp_path):
    """The ACL block trace-provision writes lets the device publish its answers (and nothing of another's)."""
    from harness.broker import Broker, add_service_user
    from harness.gateway_process import GatewayProcess
    from harness.virtual_device import VirtualDevice
    from tools import provision

    (tmp_path / "gateway.toml").write_text(f'data_dir = "{tmp_path / "gw-data"}"\n')
    assert provision.main(["--device", "dev-0001", "--board", "linux", "--terminal", "T01",
                           "--institution", "P44030000001", "--broker-host", "127.0.0.1",
                           "--out", str(tmp_path / "devices"), "--gateway-config", str(tmp_path / "gateway.toml"),
                           "--passwd", str(tmp_path / "passwd"), "--acl", str(tmp_path / "acl")]) == 0
    add_service_user(tmp_path / "passwd", tmp_path / "acl", "trace-gateway-1", "gw-secret")
    config = json.loads((tmp_path / "devices" / "dev-0001" / "config.json").read_text())
    with Broker(tmp_path / "broker", password_file=tmp_path / "passwd", acl_file=tmp_path / "acl") as broker:
        (tmp_path / "gw").mkdir()
        gateway = GatewayProcess(tmp_path / "gw", broker, mqtt_user="trace-gateway-1", mqtt_password="gw-secret",
                                 data_dir=tmp_path / "gw-data")
        device = VirtualDevice(tmp_path / "device", {**config, "broker_port": broker.port, "status_interval_s": 2})
        try:
            gateway.start()
            device.start()
            device.wait_for(r"^signal online", timeout=20)
            done = cli(gateway, "command", "dev-0001", "mode", "4")
            assert done.returncode == 0 and "dev-0001 answered applied: 4" in done.stdout, done.stdout + done.stderr
        finally:
            device.stop()
            gateway.stop()
