"""Forwarding to the platform under faults, end to end: events published to Mosquitto, stored by the gateway
process, sent to the platform simulator, each accepted exactly once."""

import json
import os
import time

from stores import fresh_database

from harness.gateway_process import GatewayProcess, forward_toml
from harness.traffic import publish_all, signed_stream
from system.fixtures import wait_until
from tcagent.codec import codes, cose, event

INSTITUTION = "P44030000001"
CATALOG = b"pid,list_code,name,pack_size,code_required\n8123456,XA01,Amoxicillin,24,1\n"


def _gateway(tmp_path, broker, platform, devices, *, rules="", **forward):
    """`rules`: lines of the [rules] table (the extra TOML starts inside it)."""
    options = dict(batch_size=50, concurrency=4, timeout_ms=1000, rate_per_s=0, sale_hold_s=0, backoff_base_ms=200,
                   backoff_cap_ms=2000, breaker_failures=5, breaker_cooldown_ms=1000)
    options.update(forward)
    (tmp_path / "gateway").mkdir()
    gateway = GatewayProcess(tmp_path / "gateway", broker, set_clocks=False, database=fresh_database(),
                             extra_toml=rules + forward_toml(platform.url, {INSTITUTION: "第一药房"}, **options))
    for device, key in devices.items():
        gateway.register(device, key, institution=INSTITUTION)
    gateway.start()
    assert gateway.api("PUT", "/api/v1/catalog", CATALOG, write=True)[0] == 200
    return gateway


def _settled(gateway):
    rows = gateway.api("GET", "/api/v1/outbox")[1]["rows"]
    return rows["pending"] == rows["sending"] == 0 and rows["done"] + rows["dead"] > 0


def test_5000_events_through_5xx_timeouts_lost_answers_and_an_outage_are_accepted_exactly_once(
        tmp_path, broker, platform):
    keys = {f"bench-{number:04d}": os.urandom(32) for number in range(20)}
    stream = signed_stream(len(keys), 5000, keys)
    gateway = _gateway(tmp_path, broker, platform, keys)
    try:
        platform.set_faults({"error_rate": 0.3, "timeout_rate": 0.1, "drop_rate": 0.05, "outage_start_s": 3,
                             "outage_s": 60})
        started = time.monotonic()
        publish_all(broker.port, stream)
        assert wait_until(lambda: sum(gateway.count(device) for device in keys) == 5000, 120)
        assert wait_until(lambda: _settled(gateway), 400, step=1), gateway.api("GET", "/api/v1/outbox")
        print(f"settled in {time.monotonic() - started:.0f} s: {platform.counts()}")
        rows = gateway.api("GET", "/api/v1/outbox")[1]["rows"]
        assert rows == {"held": 0, "pending": 0, "sending": 0, "done": 5000, "dead": 0, "withheld": 0, "withdrawn": 0,
                        "retrying": 0}
        sim = platform.counts()
        assert sim["accepted_rows"] == 5000 == sim["distinct_bchno"] and sim.get("doubles", 0) == 0
        assert sim["live_rows"] == 5000 and sim.get("code_doubles", 0) == 0
        assert sim["fault_outage"] > 0 and sim["fault_error"] > 0 and sim["fault_timeout"] > 0
        assert sim["fault_drop"] > 0 and sim["replays"] > 0
        expected = sorted(f"8123456{number:013d}" for number in range(5000))
        assert sorted(platform.accepted_codes()) == expected
        [rate] = gateway.api("GET", "/api/v1/rates?window_h=8784")[1]["rates"]
        assert rate["upload_rate"] == 1.0
        metrics = gateway.api("GET", "/metrics")[1]
        assert 'tracegw_outbox_rows{state="done"} 5000.0' in metrics and "tracegw_forward_requests_total" in metrics
    finally:
        gateway.stop()


def test_kill_9_with_requests_in_flight_loses_nothing_and_doubles_nothing(tmp_path, broker, platform):
    keys = {f"bench-{number:04d}": os.urandom(32) for number in range(5)}
    stream = signed_stream(len(keys), 600, keys)
    gateway = _gateway(tmp_path, broker, platform, keys, batch_size=10, timeout_ms=3000)
    try:
        platform.set_faults({"latency_ms": 300, "drop_rate": 0.2})
        publish_all(broker.port, stream)
        for _ in range(3):
            assert wait_until(lambda: platform.counts().get("requests", 0) > 0, 30)
            time.sleep(0.5)  # requests are in flight: each takes 300 ms at the platform
            gateway.stop(kill=True)
            gateway.start()
        assert wait_until(lambda: sum(gateway.count(device) for device in keys) == 600, 60)
        assert wait_until(lambda: _settled(gateway), 120, step=0.5), gateway.api("GET", "/api/v1/outbox")
        sim = platform.counts()
        assert gateway.api("GET", "/api/v1/outbox")[1]["rows"]["done"] == 600
        assert sim["accepted_rows"] == 600 == sim["distinct_bchno"] and sim.get("doubles", 0) == 0
    finally:
        gateway.stop()


def test_per_row_refusal_is_a_dead_letter_that_can_be_requeued_after_the_fix(tmp_path, broker, platform):
    keys = {"bench-0000": os.urandom(32)}
    gateway = _gateway(tmp_path, broker, platform, keys, batch_size=5)
    try:
        platform.set_faults({"reject_list_code": "XA01"})
        publish_all(broker.port, signed_stream(1, 7, keys))
        assert wait_until(lambda: _settled(gateway), 60, step=0.5)
        letters = gateway.api("GET", "/api/v1/deadletters")[1]["dead_letters"]
        assert len(letters) == 7 and all("XA01不存在" in letter["error"] for letter in letters)
        platform.set_faults({"reject_list_code": ""})  # the platform's catalog was fixed
        status, answer = gateway.api("POST", "/api/v1/deadletters/requeue", b'{"all": true}', write=True)
        assert (status, answer) == (200, {"requeued": 7})
        assert wait_until(lambda: gateway.api("GET", "/api/v1/outbox")[1]["rows"]["done"] == 7, 60, step=0.5)
        assert platform.counts()["accepted_rows"] == 7
    finally:
        gateway.stop()


def _sale(key, seq, code, ticket, when_ms):
    """A sale scanned for `ticket` (its number scanned first at the counter), signed as the firmware signs it."""
    payload = event.encode("dev-a", seq, 1, when_ms, seq, 1, 1, codes.decode(code.encode()), ticket, 0)
    return "dev-a", seq, cose.sign(cose.MacKey(key), payload, b"dev-a")


def test_lines_of_several_boxes_go_up_once_with_their_quantity_and_a_duplicate_is_one_alert(
        tmp_path, broker, platform):
    """Issue 16, over the real path (Mosquitto in, the platform simulator out): five tickets of one 3-box line, the
    boxes arriving 0.4 s apart across the planner's ticks and the sale hold, went up as 15 rows of quantity 3 each
    (45 packs for 15 sold); and a line whose only scan was a duplicate also got `unscanned_sale` later."""
    key = os.urandom(32)
    gateway = _gateway(tmp_path, broker, platform, {"dev-a": key}, sale_hold_s=2,
                       rules="unscanned_after_s = 3\n")
    try:
        now = int(time.time() * 1000)
        for number in range(1, 7):
            ticket = {"number": f"T{number}", "terminal": "T01", "time": now,
                      "lines": [{"list_code": "XA01", "quantity": 3 if number <= 5 else 1}]}
            assert gateway.api("POST", "/api/v1/tickets", json.dumps(ticket).encode(), write=True)[0] == 201
        seq = 0
        for number in range(1, 6):
            for box in range(3):
                seq += 1
                publish_all(broker.port, [_sale(key, seq, f"8123456{number * 10 + box:013d}", f"T{number}", now)])
                time.sleep(0.4)
        publish_all(broker.port, [_sale(key, 16, f"8123456{10:013d}", "T6", now)])  # T1's first box sold again
        assert wait_until(lambda: gateway.count("dev-a") == 16, 30)
        assert wait_until(lambda: _settled(gateway) and gateway.api("GET", "/api/v1/outbox")[1]["rows"]["done"] == 15,
                          60, step=0.5), gateway.api("GET", "/api/v1/outbox")
        totals = platform.sale_totals()
        for number in range(1, 6):
            line = totals[(INSTITUTION, f"T{number}", "XA01")]
            assert line.sold == 3 and len(line.codes) == 3, (number, line)
        assert (INSTITUTION, "T6", "XA01") not in totals  # a duplicate code never goes up
        sim = platform.counts()
        assert sim["live_rows"] == 5 and sim.get("doubles", 0) == 0 and sim.get("code_doubles", 0) == 0
        time.sleep(max(0.0, now / 1000 + 6 - time.time()))  # past unscanned_after_s for every line
        assert wait_until(lambda: any(alert["type"] == "repeat_sale" for alert in
                                      gateway.api("GET", "/api/v1/alerts?state=open")[1]["alerts"]), 10)
        time.sleep(2)  # the line checks run
        alerts = gateway.api("GET", "/api/v1/alerts?state=open")[1]["alerts"]
        assert sorted(alert["type"] for alert in alerts) == ["repeat_sale"], alerts
    finally:
        gateway.stop()
