"""Prove a counter device works: connect, decode every code of the test sheet, acknowledge fast, keep scans
through an outage, a reset mid-burst and a broker restart, and be refused when it is not who it says."""

from __future__ import annotations

import statistics
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hil_tests.conftest import DEVICE
from hil_tests.sheet import MODE_BARCODES, SHEET


def _online(target, start=0):
    return target.wait_for(r"^signal online", timeout=30, start=start)


def _code(number: int) -> str:
    return f"8123456{number:013d}"


def _stored(system) -> list[int]:
    return [seq for seq, _, _ in system["gateway"].events(DEVICE)]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_boot_and_connect(system, target, record):
    started = time.monotonic()
    target.start(system["config"])
    _online(target)
    record("connect_s", round(time.monotonic() - started, 2))
    assert _wait(lambda: system["gateway"].api("GET", "/api/v1/devices")[1]["devices"][0]["online"], 20)
    device = system["gateway"].api("GET", "/api/v1/devices")[1]["devices"][0]
    record("firmware", device["firmware"])
    assert device["firmware"] and device["missing_seqs"] == 0


def test_every_code_of_the_test_sheet(system, target, record):
    target.start(system["config"])
    _online(target)
    for seq, (_label, text, local, verdict) in enumerate(SHEET, start=1):
        start = len(target.lines)
        target.scan(text)
        if local:
            target.wait_for(rf"^signal invalid seq={seq} {local}$", start=start)
        else:
            target.wait_for(rf"^signal taken seq={seq}$", start=start)
        target.wait_for(rf"^signal {verdict} seq={seq}$", start=start, timeout=15)
        time.sleep(0.9)  # past the re-read window
    assert _stored(system) == list(range(1, len(SHEET) + 1))
    for text, signal in MODE_BARCODES:
        start = len(target.lines)
        target.scan(text)
        target.wait_for(rf"^signal {signal}$", start=start)
    record("codes", len(SHEET))


def test_scan_to_ack_latency(system, target, record):
    target.start(system["config"])
    _online(target)
    taken, acked = [], []
    for number in range(30):
        start = len(target.lines)
        sent = time.monotonic()
        target.scan(_code(number))
        seq = target.wait_for(r"^signal taken seq=(\d+)$", start=start).group(1)
        taken.append((target.when(r"^signal taken", start=start) - sent) * 1000)
        acked.append((target.when(rf"^signal ok seq={seq}$", start=start, timeout=15) - sent) * 1000)
    ordered = sorted(acked)
    record("taken_p50_ms", round(statistics.median(taken), 1))
    record("ack_p50_ms", round(statistics.median(acked), 1))
    record("ack_p99_ms", round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1))
    assert statistics.median(acked) < 2000


def test_offline_buffering_and_drain(system, target, record):
    target.start(system["config"])
    _online(target)
    system["broker"].stop()
    for number in range(20):
        target.scan(_code(100 + number))
        time.sleep(0.05)
    assert _wait(lambda: target.count(r"^signal taken") == 20, 20)  # the cashier never waits for the network
    outage_start = len(target.lines)
    system["broker"].start()
    started = time.monotonic()
    target.wait_for(r"^signal ok seq=20$", start=outage_start, timeout=60)
    record("drain_s", round(time.monotonic() - started, 2))
    assert _stored(system) == list(range(1, 21))


def test_reset_mid_burst(system, target, record):
    target.start(system["config"])
    _online(target)
    for number in range(30):
        target.scan(_code(200 + number))
        if number == 15:
            target.wait_for(r"^signal taken seq=15$")
            target.hard_reset()  # scan 16 may be lost: it was not heard "taken"
            after_reset = len(target.lines)
            _online(target, start=after_reset)
    assert _wait(lambda: sum(1 for line in target.lines[after_reset:] if line.startswith("signal taken")) == 14, 20)
    taken = {int(line.split("=")[1]) for line in target.lines if line.startswith("signal taken seq=")}
    assert _wait(lambda: set(_stored(system)) >= taken, 60), (sorted(taken), _stored(system))
    stored = _stored(system)
    assert stored == sorted(set(stored)) == list(range(1, len(stored) + 1))  # each once, no hole
    record("taken", len(taken))
    record("stored", len(stored))


def test_broker_restart(system, target, record):
    target.start(system["config"])
    _online(target)
    start = len(target.lines)
    system["broker"].stop()
    target.wait_for(r"^signal offline", start=start, timeout=60)
    system["broker"].start()
    started = time.monotonic()
    _online(target, start=start)
    record("reconnect_s", round(time.monotonic() - started, 2))
    start = len(target.lines)
    target.scan(_code(300))
    target.wait_for(r"^signal ok seq=1$", start=start, timeout=20)


def test_a_device_with_a_wrong_key_is_refused(system, target, record):
    wrong = {**system["config"], "key_hex": "00" * 32, "data_dir": system["config"]["data_dir"] + "-wrong-key"}
    target.start(wrong)
    _online(target)
    target.scan(_code(400))
    target.wait_for(r"^signal taken seq=1$")
    gateway = system["gateway"]
    assert _wait(lambda: any(row[0] == "bad_mac" for row in gateway.quarantine()), 20)
    time.sleep(1)
    assert target.count(r"^signal ok") == 0 and _stored(system) == []
    record("quarantined", "bad_mac")


def test_the_acl_stops_a_device_publishing_as_another(system, target, record):
    target.start(system["config"])
    _online(target)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="hil-impostor")
    client.username_pw_set(DEVICE, system["password"])
    client.connect("127.0.0.1", system["broker"].port)
    client.loop_start()
    assert _wait(client.is_connected, 10)
    try:  # Mosquitto drops the message, and may drop the connection of a 3.1.1 client that tried
        client.publish("tc/v1/other/ev", b"\xd1\x84", qos=1).wait_for_publish(5)
    except RuntimeError:
        pass
    time.sleep(0.5)
    assert _wait(client.is_connected, 10)  # paho reconnects
    client.publish(f"tc/v1/{DEVICE}/ev", b"\xd1\x84", qos=1).wait_for_publish(5)  # its own topic: reaches it
    assert _wait(lambda: len(system["gateway"].quarantine()) >= 1, 10)
    time.sleep(1)
    client.loop_stop()
    client.disconnect()
    topics = [row[1] for row in system["gateway"].quarantine()]
    assert all("other" not in detail for detail in topics)
    assert system["gateway"].api("GET", "/api/v1/quarantine")[1]["messages"][0]["topic"] == f"tc/v1/{DEVICE}/ev"
    record("dropped_by_broker", "tc/v1/other/ev")


def test_feedback_signals(system, target, record):
    catalog = b"pid,list_code,name,pack_size\n8123456,XA01,Amoxicillin,24\n"
    assert system["gateway"].api("PUT", "/api/v1/catalog", catalog, write=True)[0] == 200
    target.start(system["config"])
    _online(target)
    steps = [(_code(500), r"^signal ok seq=1$"), ("6901234567892", r"^signal invalid seq=2$"),
             (_code(500), r"^signal duplicate seq=3$"), ("8999999" + "0" * 13, r"^signal unknown_product seq=4$")]
    for text, expected in steps:
        start = len(target.lines)
        target.scan(text)
        target.wait_for(r"^signal (taken|invalid) seq=", start=start)
        target.wait_for(expected, start=start, timeout=15)
        time.sleep(0.9)
    record("signals", "taken ok invalid duplicate unknown_product")
    flashes = getattr(target, "flashes", None)
    if flashes is not None:  # a target that reads the board's pins (rp2040): the cashier saw the signals too
        def lit() -> dict[str, int]:
            return {pin: flashes(pin) for pin in ("led_green", "led_red", "led_amber")}

        # taken and ok are green, invalid red; duplicate flashes amber twice (the next scan may cut the second),
        # unknown product three times (the last signal: it plays to the end)
        enough = _wait(lambda: lit()["led_green"] >= 2 and lit()["led_red"] >= 1 and lit()["led_amber"] >= 4, 10)
        record("flashes", " ".join(f"{pin} {count}" for pin, count in lit().items()))
        assert enough, lit()
