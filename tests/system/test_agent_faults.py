"""The agent under faults: broker outage, power cuts, a full journal, garbage on the UART."""

import os
import random
import threading
import time

import pytest

from harness.virtual_device import prefill_journal
from system.fixtures import wait_until

OUTAGE_S = 30
POWER_CUT_ROUNDS = 50


def serial_code(number):
    """A distinct valid 20-digit trace code per number."""
    return f"8123456{number:013d}"


@pytest.mark.on_builds
def test_500_scans_while_the_broker_is_down_arrive_once_in_order(gateway, make_device, device_key, broker,
                                                                 watch_status):
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device(backoff_max_s=4)
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    broker.stop()
    stopped = time.monotonic()
    for number in range(500):
        device.scan(serial_code(number))
    assert wait_until(lambda: len(device.taken()) == 500, 30), device.lines[-5:]
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    broker.start()
    status = watch_status()
    assert wait_until(lambda: len(gateway.events("dev-0001")) == 500, 60), len(gateway.events("dev-0001"))
    events = gateway.events("dev-0001")
    assert [seq for seq, _, _ in events] == list(range(1, 501))
    assert wait_until(lambda: status.latest().get(4) == 0 and status.latest().get(6) == 500, 20), status.latest()
    assert gateway.quarantine() == []
    segments = [name for name in os.listdir(device.folder / "data" / "journal") if name.endswith(".seg")]
    assert len(segments) <= 2  # trimmed: what is left is the active segment
    assert device.count(r"Task exception|Traceback") == 0  # a lost connection is one log line, not a traceback


@pytest.mark.on_builds
def test_power_cuts_lose_no_taken_scan_and_reuse_no_seq(gateway, make_device, device_key):
    gateway.register("dev-0001", device_key)
    gateway.start()
    taken_everywhere: list[int] = []
    scanned = 0
    for round_number in range(POWER_CUT_ROUNDS):
        seed = random.randrange(2**32)
        chance = random.Random(seed)
        print(f"power-cut round {round_number} seed {seed}")
        device = make_device()
        device.start()
        stop = threading.Event()

        def scanning(count_from, chance=chance, device=device, stop=stop):
            number = count_from
            while not stop.is_set():
                try:
                    device.scan(serial_code(number))
                except OSError:
                    return
                number += 1
                time.sleep(chance.uniform(0, 0.01))

        scanner = threading.Thread(target=scanning, args=(scanned,))
        scanner.start()
        time.sleep(chance.uniform(0.02, 0.4))
        device.kill()
        stop.set()
        scanner.join()
        scanned += 1000
        taken_everywhere.extend(device.taken())
    assert len(taken_everywhere) == len(set(taken_everywhere)), "a seq was signalled as taken twice"
    assert len(taken_everywhere) > POWER_CUT_ROUNDS
    final = make_device()
    final.start()
    assert wait_until(lambda: {seq for seq, _, _ in gateway.events("dev-0001")} >= set(taken_everywhere), 60)
    stored = [seq for seq, _, _ in gateway.events("dev-0001")]
    assert stored == list(range(1, len(stored) + 1))  # contiguous: nothing lost, nothing reused
    assert gateway.quarantine() == []  # no torn record was published, no seq came twice with other bytes


@pytest.mark.on_builds
def test_full_journal_refuses_scans_until_acks_free_it(gateway, make_device, device_key, watch_status):
    gateway.register("dev-0001", device_key)
    device = make_device(journal_capacity=8192, journal_segment=4096)
    device.start()
    status = watch_status()
    for number in range(80):
        device.scan(serial_code(number))
    device.wait_for(r"^signal full refused", timeout=10)
    time.sleep(0.5)
    taken = device.taken()
    refused = device.count(r"^signal full refused")
    assert taken == list(range(1, len(taken) + 1)) and refused == 80 - len(taken) and refused > 0
    assert wait_until(lambda: status.latest().get(12, 0) & 1, 10), status.latest()
    gateway.start()
    assert wait_until(lambda: len(gateway.events("dev-0001")) == len(taken), 30)
    device.scan(serial_code(1000))
    device.wait_for(rf"^signal taken seq={len(taken) + 1}$", timeout=10)
    assert wait_until(lambda: len(gateway.events("dev-0001")) == len(taken) + 1, 20)
    assert wait_until(lambda: not status.latest().get(12, 1) & 1, 10), status.latest()


@pytest.mark.on_builds
def test_garbage_on_the_uart_is_counted_not_fatal(gateway, make_device, device_key, watch_status):
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device(line_timeout_ms=100)
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    noise = random.Random(7)
    device.send_raw(bytes(noise.randrange(256) for _ in range(5000)))
    device.send_raw(b"8" * 3000 + b"\r\n")  # over-long line
    device.send_raw(b"]d2010690123456")  # a partial line, then silence
    time.sleep(0.5)
    device.send_raw(b"\x00\x00\xff\r\n\r\n\r\n")
    device.scan(serial_code(1))
    device.wait_for(r"^signal ok seq=\d+$", timeout=15)
    assert device.alive()
    status = watch_status()
    assert wait_until(lambda: status.latest().get(14, {}).get(1, 0) >= 2, 10), status.latest()
    stored = gateway.events("dev-0001")
    assert stored and stored[-1][2] == 0 and all(verdict in (0, 2) for _, _, verdict in stored)
    assert device.count(r"^signal taken") == len(stored)


HEAP = "160K"
"""On x86-64, where about 100 KB of it is the firmware's own code loaded from .mpy (docs/benchmarks.md says what
this means on a 32-bit board). It was 144K; the board layer's supervision, pin and clock checks (issue 15) added
about 2 KB of code at boot (148K). The codec package (issue 19) added a few names (tcagent.codec, its compat):
MicroPython interns names in pools that double, and its fifth pool (620 names in all) was full, so a sixth of
640 came at boot, about 7 KB on x86-64 (micropython.qstr_info: 6 pools, 622 names; at 153K the boot scan of
the 10,000 events found no room). What the test holds is that the same cap drains 10 or 10,000 events."""


def test_capped_heap_drains_a_10000_event_backlog(gateway, make_device, device_key, watch_status, tmp_path):
    gateway.register("dev-0001", device_key)
    prefill_journal(tmp_path / "dev-0001" / "data", "dev-0001", device_key, 10_000)
    device = make_device(journal_capacity=4 * 1024 * 1024)
    device.heap, device.compiled = HEAP, True
    gateway.start()
    status = watch_status()
    started = time.monotonic()
    device.start()
    drained = wait_until(lambda: gateway.count("dev-0001") == 10_000, 180)
    assert drained, (gateway.count("dev-0001"), "\n".join(device.lines[-40:]))
    drained_s = time.monotonic() - started
    device.scan(serial_code(20_000))
    device.wait_for(r"^signal ok seq=10001$", timeout=20)
    assert device.alive()
    assert wait_until(lambda: status.latest().get(4) == 0, 10)
    print(f"drained 10,000 events in {drained_s:.1f} s ({10_000 / drained_s:.0f} events/s) with heap {HEAP}")


@pytest.mark.on_builds
def test_hostile_acks_and_commands_on_the_broker_leave_the_device_serving(gateway, make_device, device_key, broker,
                                                                         watch_status):
    """Issue 14: junk on the device's ack and command topics is counted; every scan after it is still acked at
    once (a dead MQTT reader would hold the verdict until the 30 s PUBACK timeout)."""
    import cbor2
    import paho.mqtt.publish as publish

    from tcagent.codec import cose

    def signed(payload):
        return cose.sign(cose.MacKey(device_key), cbor2.dumps(payload), b"gateway")

    hostile = [
        ("ack", cbor2.dumps([0, 1, 1])), ("ack", b"\xff\x00"), ("ack", b""), ("ack", cbor2.dumps({0: 1, 1: "1"})),
        ("ack", cbor2.dumps({0: 1, 1: 0, 2: [[1, "x"]]})), ("ack", cbor2.dumps({0: 1, 1: 2**64})),
        ("ack", cbor2.dumps([[[[[[[[1]]]]]]]])), ("ack", cbor2.dumps({0: 1, 1: 0})[:-1]),
        ("cmd", cbor2.dumps([1, 2, 3])), ("cmd", signed([1, 10**6, 2, 0, 3])),
        ("cmd", signed({0: 1, 1: 10**6, 2: 4, 3: 0, 4: {"status_interval_s": 2**64 - 1}})),
        ("cmd", signed({0: 1, 1: 10**6, 2: 1, 3: 0, 4: 2**63})),
    ]
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device()
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    status = watch_status()
    for number, (topic, payload) in enumerate(hostile):
        publish.single(f"tc/v1/dev-0001/{topic}", payload, qos=1, hostname="127.0.0.1", port=broker.port)
        device.scan(serial_code(number))
        device.wait_for(rf"^signal ok seq={number + 1}$", timeout=10)
    assert device.alive()
    assert wait_until(lambda: status.latest().get(14, {}).get(10, 0) == len(hostile), 10), status.latest()
    assert [seq for seq, _, _ in gateway.events("dev-0001")] == list(range(1, len(hostile) + 1))
    assert gateway.quarantine() == []
