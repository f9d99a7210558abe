"""The scanner agent end to end: firmware on the micropython executable, a pty scan engine, Mosquitto, the gateway."""

import os

import cbor2
import pytest

from gateway.wire.protocol import Verdict, parse_event, verify_mac0
from system.fixtures import wait_until

GS1 = b"]d2010690123456789217261200102AB\x1d21XYZ123"


@pytest.mark.parametrize("interpreter", ["micropython", "micropython-aarch64", "cpython"])
def test_scan_is_stored_acked_and_verdict_signalled(gateway, make_device, device_key, interpreter):
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device(interpreter=interpreter)
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    device.scan(GS1)
    device.wait_for(r"^signal taken seq=1$")
    device.wait_for(r"^signal ok seq=1$", timeout=15)
    device.scan(b"TC:MODE:RETURN")
    device.wait_for(r"^signal mode 2$")
    device.scan(b"6901234567892")
    device.wait_for(r"^signal invalid seq=2 err=7$")
    device.wait_for(r"^signal invalid seq=2$", timeout=15)  # the gateway's verdict agrees
    assert wait_until(lambda: len(gateway.events("dev-0001")) == 2, 10)
    (seq, signed, verdict), second = gateway.events("dev-0001")
    event = parse_event(verify_mac0(signed, {"dev-0001": device_key}.get, topic_device="dev-0001"))
    assert (seq, event.serial, event.op, verdict) == (1, "XYZ123", 1, Verdict.OK)
    assert second[2] == Verdict.INVALID_CODE
    assert gateway.quarantine() == []


@pytest.mark.on_builds
def test_status_is_retained_and_reports_a_trimmed_journal(gateway, make_device, device_key, broker):
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device()
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    for number in range(5):
        device.scan(f"8123456789012345678{number}")
    device.wait_for(r"^signal ok seq=5$", timeout=15)
    seen = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="status-watch")
    watcher.on_message = lambda client, userdata, message: seen.append(cbor2.loads(message.payload))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("tc/v1/dev-0001/status", qos=1)
    watcher.loop_start()
    try:
        assert wait_until(lambda: any(s.get(4) == 0 and s.get(6) == 5 for s in seen), 10), seen
        latest = seen[-1]
        assert latest[1] is True and latest[8] == 5 and latest[13] == 1 and latest[14][0] == 5
    finally:
        watcher.loop_stop()
        watcher.disconnect()


def _command(key, command_id, kind, argument):
    from pycose.headers import KID, Algorithm
    from pycose.keys import SymmetricKey
    from pycose.messages import Mac0Message

    payload = cbor2.dumps({0: 1, 1: command_id, 2: kind, 3: 1767225600000, 4: argument})
    message = Mac0Message(phdr={Algorithm: "HMAC_256"}, uhdr={KID: b"gateway"}, payload=payload)
    message.key = SymmetricKey(k=key)
    return message.encode()


@pytest.mark.on_builds
def test_gateway_commands_need_a_valid_mac_and_a_fresh_id(quiet_gateway, make_device, device_key, broker, watch_status):
    import paho.mqtt.publish as publish

    gateway = quiet_gateway
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = make_device()
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    status = watch_status()

    def send(message):
        publish.single("tc/v1/dev-0001/cmd", message, qos=1, hostname="127.0.0.1", port=broker.port)

    send(_command(device_key, 5, 2, 3))  # mode: purchase
    device.wait_for(r"^signal mode 3$")
    send(_command(device_key, 6, 1, 1767225600000))  # time
    device.wait_for(r"^log command 6 type 1 applied")
    send(_command(device_key, 6, 2, 5))  # replayed id
    send(_command(os.urandom(32), 7, 2, 5))  # wrong key
    assert wait_until(lambda: status.latest().get(14, {}).get(9, 0) >= 2, 10), status.latest()
    latest = status.latest()
    assert latest[13] == 3 and latest[7] == 2 and latest[12] & 8  # mode, clock from gateway, command-MAC alarm
    device.scan(GS1)
    device.wait_for(r"^signal ok seq=1$", timeout=15)
    event = parse_event(verify_mac0(gateway.events("dev-0001")[0][1], {"dev-0001": device_key}.get,
                                    topic_device="dev-0001"))
    assert event.op == 3 and event.clock == 2 and abs(event.time_ms - 1767225600000) < 60_000

    send(_command(device_key, 8, 3, 1))  # resend from seq 1: the gateway counts a duplicate, stores nothing twice
    assert wait_until(lambda: _duplicates(gateway) >= 1, 15)
    assert len(gateway.events("dev-0001")) == 1
    send(_command(device_key, 9, 5, None))  # reboot: the unix port exits for its service manager to restart it
    assert wait_until(lambda: not device.alive(), 10) and device.process.returncode == 75


def _duplicates(gateway):
    with gateway.store() as store:
        return store.query("SELECT duplicates FROM device_state WHERE device = 'dev-0001'")[0][0]


@pytest.mark.parametrize("interpreter", ["micropython", "micropython-aarch64", "cpython"])
def test_tls_to_the_broker_verified_with_the_private_ca(tmp_path, device_key, interpreter):
    from harness.broker import Broker
    from harness.gateway_process import GatewayProcess
    from harness.virtual_device import VirtualDevice
    from tools.certs import make_ca_and_server

    tls = make_ca_and_server(tmp_path / "tls", ["localhost", "127.0.0.1"])
    broker = Broker(tmp_path / "broker", tls=tls)
    broker.start()
    (tmp_path / "gateway").mkdir()
    gateway = GatewayProcess(tmp_path / "gateway", broker)
    gateway.register("dev-0001", device_key)
    gateway.start()
    device = VirtualDevice(tmp_path / "dev", {"device_id": "dev-0001", "key_hex": device_key.hex(),
                                              "broker_host": "localhost", "broker_port": broker.tls_port,
                                              "tls": True, "tls_ca": str(tls.ca_cert)}, interpreter=interpreter)
    try:
        device.start()
        device.wait_for(r"^signal online", timeout=30)
        device.scan(GS1)
        device.wait_for(r"^signal ok seq=1$", timeout=20)
    finally:
        device.stop()
        gateway.stop()
        broker.stop()
