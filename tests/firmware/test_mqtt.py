"""The firmware's MQTT client against a real Mosquitto, on both interpreters."""

import threading
import time

import paho.mqtt.client as paho
import pytest

from harness.broker import Broker, free_port

from conftest import FirmwareError


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with Broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.mark.parametrize("size", [10, 300, 3000])
def test_publish_subscribe_qos1_with_window(fw, broker, size):
    result = fw.call("mqtt_echo", broker.port, f"echo-{fw.name}-{size}", 20, size)
    assert result["pubacks"] == list(range(20))
    expected = [f"{number}:".encode().ljust(size, bytes([number])) for number in range(20)]
    assert [payload for _, payload in result["received"]] == expected  # whole packets, even with PUBACKs in flight
    assert result["received"][0][0] == f"tc/v1/echo-{fw.name}-{size}/ack"


@pytest.mark.parametrize("vanish, will_expected", [(True, True), (False, False)])
def test_last_will_only_when_the_device_vanishes(fw, broker, vanish, will_expected):
    device = f"will-{fw.name}-{vanish}"
    seen = threading.Event()
    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"watch-{device}")
    watcher.on_message = lambda client, userdata, message: seen.set() if message.payload else None
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe(f"tc/v1/{device}/status", qos=1)
    watcher.loop_start()
    try:
        if vanish:
            fw.call("mqtt_vanish", broker.port, device)
        else:
            fw.call("mqtt_echo", broker.port, device, 1, 10)
        assert seen.wait(3.0 if will_expected else 1.0) == will_expected
    finally:
        watcher.loop_stop()
        watcher.disconnect()


def test_oversized_inbound_packet_ends_the_connection(fw, broker):
    with pytest.raises(FirmwareError, match="connection lost while waiting"):
        fw.call("mqtt_echo", broker.port, f"big-{fw.name}", 5, 5000)


def test_connection_refused_is_a_clear_error(fw, broker):
    with pytest.raises(FirmwareError, match="cannot reach"):
        fw.call("mqtt_refused", free_port(), None, None)


def test_a_packet_is_never_split_by_another_tasks_packet(fw):
    written = fw.call("mqtt_interleave")
    publish = b"\x32\x0f\x00\x01t\x00\x01" + b"P" * 10
    assert written in (publish + b"\x40\x02\x00\x08", b"\x40\x02\x00\x08" + publish)


@pytest.mark.parametrize("packet", [
    b"\x32\x03\x00\x05a",  # PUBLISH whose topic length runs past the packet
    b"\x30\x04\x00\x02\xff\xfe",  # PUBLISH whose topic is not UTF-8
    b"\x32\x03\x00\x01a",  # QoS 1 PUBLISH without its packet id
    b"\x40\x01\x00",  # PUBACK of one byte
    b"\x90\x02\x00\x00",  # SUBACK without its return code
], ids=["topic_length", "topic_utf8", "no_packet_id", "short_puback", "short_suback"])
def test_malformed_packet_from_the_broker_ends_the_connection_cleanly(fw, packet):
    """A garbled packet is the broker breaking the protocol: MQTTError and a closed client (the link
    reconnects at once), not a stray exception that leaves the client looking connected."""
    running, ended, connected = fw.call("mqtt_malformed", packet)
    assert (running, ended, connected) == (False, "MQTTError", False)


def test_publish_allocates_nothing(micropython_firmware, broker):
    """publish() builds its packet in the buffers the client took at start: MicroPython's heap is locked around
    each of 20 publishes (any allocation would raise MemoryError); the broker delivers each one as sent."""
    device = "locked-publish"
    received = []
    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"watch-{device}")
    watcher.on_message = lambda client, userdata, message: received.append(message.payload)
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *args: subscribed.set()
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe(f"tc/v1/{device}/ev", qos=1)
    watcher.loop_start()
    try:
        assert subscribed.wait(5)
        result = micropython_firmware.call("mqtt_publish_heap_locked", broker.port, device, 20)
        deadline = time.monotonic() + 5
        while len(received) < 22 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.loop_stop()
        watcher.disconnect()
    assert result["tokens"] == list(range(22))  # every PUBACK, with the token its publish gave
    assert received == result["payloads"]
