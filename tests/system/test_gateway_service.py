"""The gateway as a service, end to end: firmware on micropython, Mosquitto, POS tickets over MQTT, verdicts at the
counter, rates and alerts through the HTTP API, device status and clock, and the systemd notify protocol."""

import json
import os
import socket
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from stores import fresh_database

from system.fixtures import wait_until

CATALOG = b"pid,list_code,name,pack_size,code_required\n8123456,XA01,Amoxicillin,24,1\n8654321,XB02,Ibuprofen,20,1\n"


def box(serial, prefix="8123456"):
    return f"{prefix}{serial:013d}".encode()


class PosClient:
    """A POS system on MQTT: sends tickets, collects the gateway's answers."""

    def __init__(self, port, terminal):
        self.terminal = terminal
        self.answers = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pos-{terminal}-{os.getpid()}")
        self._client.on_message = lambda client, userdata, message: self.answers.append(json.loads(message.payload))
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(f"tc/v1/pos/{terminal}/result", qos=1)
        self._client.loop_start()

    def send(self, ticket):
        self._client.publish(f"tc/v1/pos/{self.terminal}/ticket", json.dumps(ticket), qos=1).wait_for_publish(10)

    def close(self):
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def pos(broker):
    client = PosClient(broker.port, "T01")
    yield client
    client.close()


def test_tickets_verdicts_rates_and_alerts_end_to_end(gateway, make_device, device_key, pos):
    gateway.register("dev-0001", device_key)
    gateway.start()
    assert gateway.api("PUT", "/api/v1/catalog", CATALOG, write=True) == (200, {"imported": 2})
    device = make_device(debounce_ms=1500)
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    pos.send({"number": "T1", "terminal": "T01", "time": int(time.time() * 1000),
              "lines": [{"list_code": "XA01", "quantity": 2}]})
    assert wait_until(lambda: pos.answers, 10) and pos.answers[0] == {"number": "T1", "result": "stored", "error": ""}
    pos.send({"number": "T1", "terminal": "T01", "time": int(time.time() * 1000) - 60_000,  # other content
              "lines": [{"list_code": "XA01", "quantity": 1}]})
    assert wait_until(lambda: len(pos.answers) == 2, 10) and pos.answers[1]["result"] == "refused"
    # wrong terminal, no lines: refused
    pos.send({"number": "T2", "terminal": "T09", "time": int(time.time() * 1000), "lines": []})
    device.scan(b"TC:TKT:T1")
    device.scan(box(1))
    device.wait_for(r"^signal ok seq=1$", timeout=15)
    device.scan(box(1))  # a double read inside the debounce window: dropped on the device, no second sale
    device.scan(box(2))
    device.wait_for(r"^signal ok seq=2$", timeout=15)
    time.sleep(1.6)
    device.scan(box(1))  # the first box again, on purpose: a duplicate
    device.wait_for(r"^signal duplicate seq=3$", timeout=15)
    device.scan(box(3, "8654321"))  # a product the ticket does not bill
    device.wait_for(r"^signal mismatch seq=4$", timeout=15)
    device.scan(box(4, "8999999"))  # a product the catalog does not know
    device.wait_for(r"^signal unknown_product seq=5$", timeout=15)
    assert gateway.count("dev-0001") == 5

    status, body = gateway.api("GET", "/api/v1/rates")
    [row] = body["rates"]
    assert (row["terminal"], row["units_required"], row["units_covered"], row["coverage"]) == ("T01", 2, 2, 1.0)
    assert (row["sale_scans"], row["duplicate_sales"], row["matched_scans"], row["mismatched_scans"]) == (5, 1, 4, 1)
    alerts = {alert["type"]: alert for alert in gateway.api("GET", "/api/v1/alerts?state=open")[1]["alerts"]}
    assert set(alerts) >= {"repeat_sale", "product_mismatch"}
    assert len(alerts["repeat_sale"]["events"]) == 2 and alerts["repeat_sale"]["terminal"] == "T01"
    assert gateway.api("POST", f"/api/v1/alerts/{alerts['repeat_sale']['id']}", b'{"state": "acknowledged"}',
                       write=True)[0] == 200
    reasons = gateway.api("GET", "/api/v1/quarantine")[1]["reasons"]
    assert set(reasons) == {"ticket_conflict", "ticket_invalid"}
    metrics = gateway.api("GET", "/metrics")[1]
    assert 'tracegw_ingest_events_total{result="stored"} 5.0' in metrics
    assert 'tracegw_tickets_total{result="refused"} 2.0' in metrics


def test_a_double_read_inside_the_debounce_window_is_one_sale_and_raises_nothing(gateway, make_device, device_key):
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device(debounce_ms=1500)
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    device.scan(box(7))
    device.scan(box(7))  # the engine read the same label twice
    device.wait_for(r"^signal ok seq=1$", timeout=15)
    time.sleep(1)
    assert gateway.count("dev-0001") == 1 and device.count(r"^signal taken") == 1
    assert gateway.api("GET", "/api/v1/alerts?state=live")[1]["alerts"] == []


def test_device_status_clock_and_offline_reach_the_api(gateway, make_device, device_key):
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device(status_interval_s=1, trust_host_clock=False)
    device.start()
    device.wait_for(r"^signal online", timeout=20)

    def view():
        return gateway.api("GET", "/api/v1/devices")[1]["devices"][0]

    assert wait_until(lambda: view()["clock"] == 2, 15), view()  # the gateway set the never-synced clock
    device.scan(box(1))
    device.wait_for(r"^signal ok seq=1$", timeout=15)
    assert wait_until(lambda: view()["acked_seq"] == 1 and view()["online"], 10)
    assert view()["firmware"] and view()["missing_seqs"] == 0
    device.kill()  # the broker publishes its Last Will
    assert wait_until(lambda: not view()["online"], 15)


def test_systemd_ready_and_watchdog(gateway, tmp_path):
    address = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(10)
    gateway.start(env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "WATCHDOG=1" not in seen:
        seen.extend(receiver.recv(4096).decode().split("\n"))
    assert "READY=1" in seen and "WATCHDOG=1" in seen
    gateway.stop()
    seen = receiver.recv(4096).decode()
    while "STOPPING=1" not in seen:
        seen = receiver.recv(4096).decode()
    receiver.close()


def test_readiness_follows_the_broker(gateway, broker):
    gateway.start()
    assert gateway.api("GET", "/readyz")[0] == 200
    broker.stop()
    assert wait_until(lambda: gateway.api("GET", "/readyz")[0] == 503, 15)
    broker.start()
    assert wait_until(lambda: gateway.api("GET", "/readyz")[0] == 200, 30)


def test_a_shared_subscription_takes_events_statuses_and_tickets(tmp_path, broker, make_device, device_key, pos):
    from harness.gateway_process import GatewayProcess

    (tmp_path / "shared").mkdir()
    gateway = GatewayProcess(tmp_path / "shared", broker, shared_group="gateways", database=fresh_database())
    try:
        gateway.register("dev-0001", device_key)
        gateway.start()
        device = make_device()
        device.start()
        device.wait_for(r"^signal online", timeout=20)
        device.scan(box(1))
        device.wait_for(r"^signal ok seq=1$", timeout=15)
        pos.send({"number": "T1", "terminal": "T01", "time": int(time.time() * 1000),
                  "lines": [{"list_code": "XA01", "quantity": 1}]})
        assert wait_until(lambda: pos.answers, 10) and pos.answers[0]["result"] == "stored"
        assert wait_until(lambda: gateway.api("GET", "/api/v1/devices")[1]["devices"][0]["firmware"], 10)
    finally:
        gateway.stop()


def test_the_log_quota_keeps_a_failing_loop_from_filling_the_disk():
    import logging

    from gateway.service import _Quota

    quota = _Quota(per_window=5, window_s=0.2)
    record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "socket.accept() out of system resource",
                               None, None)
    assert [quota.filter(record) for _ in range(8)] == [True] * 5 + [False] * 3
    time.sleep(0.25)
    assert quota.filter(record)


def test_sighup_reloads_rules_thresholds_and_log_level_and_keeps_serving(gateway):
    import signal

    gateway.start()
    original = gateway.config.read_text()
    gateway.config.write_text(original.replace('log_level = "WARNING"', 'log_level = "INFO"')
                              + "[dashboard]\ncoverage_good = 0.95\ncoverage_warn = 0.8\n"
                              + '[forward]\nbase_url = "http://127.0.0.1:1"\n')
    gateway.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: gateway.api("GET", "/api/v1/dashboard/settings")[1]["coverage"]["good"] == 0.95, 10)
    assert wait_until(lambda: "reloaded" in gateway.log.read_text(), 5)
    line = next(json.loads(text) for text in gateway.log.read_text().splitlines() if "reloaded" in text)
    assert "dashboard" in line["message"] and "log_level" in line["message"]
    assert "forward changed and take effect at the next restart" in line["message"]
    gateway.config.write_text(original + "[dashboard]\ncoverage_good = 0.5\ncoverage_warn = 0.9\n")  # inverted
    gateway.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload refused" in gateway.log.read_text(), 10)
    assert gateway.api("GET", "/api/v1/dashboard/settings")[1]["coverage"]["good"] == 0.95
    assert gateway.process.poll() is None and gateway.api("GET", "/readyz")[0] == 200
