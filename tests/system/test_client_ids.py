"""On the shipped broker config a client id belongs to its user name: a provisioned device that claims the
gateway's client id, or another device's, gets its own session instead of taking theirs (issue 14, item 4)."""

import json
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from harness.broker import Broker, add_service_user
from harness.gateway_process import GatewayProcess
from harness.traffic import signed_stream
from system.fixtures import wait_until
from tools import provision

GATEWAY = "trace-gateway-1"
DEVICE = "bench-0000"
"""The honest device (signed_stream names its events so)."""
INTRUDER = "bench-0001"
"""A provisioned device that tries to take other clients' ids with its own, valid, login."""


class Secured:
    """Two provisioned devices, the gateway's own broker user, Mosquitto with password file and ACL, the gateway."""

    def __init__(self, folder):
        (folder / "gateway.toml").write_text(f'data_dir = "{folder / "gw-data"}"\n')
        self.logins = {}
        for device in (DEVICE, INTRUDER):
            assert provision.main(["--device", device, "--board", "linux", "--terminal", f"T-{device}",
                                   "--institution", "P44030000001",
                                   "--broker-host", "127.0.0.1", "--out", str(folder / "devices"),
                                   "--gateway-config", str(folder / "gateway.toml"),
                                   "--passwd", str(folder / "passwd"), "--acl", str(folder / "acl")]) == 0
            self.logins[device] = json.loads((folder / "devices" / device / "config.json").read_text())
        add_service_user(folder / "passwd", folder / "acl", GATEWAY, "gw-secret")
        self.broker = Broker(folder / "broker", password_file=folder / "passwd", acl_file=folder / "acl")
        (folder / "gw").mkdir()
        self.gateway = GatewayProcess(folder / "gw", self.broker, mqtt_user=GATEWAY, mqtt_password="gw-secret",
                                      data_dir=folder / "gw-data", set_clocks=False)
        self.events = signed_stream(1, 60, {DEVICE: bytes.fromhex(self.logins[DEVICE]["key_hex"])})

    def client(self, login, client_id, *, clean_session=False):
        """A paho client (MQTT 3.1.1, as the firmware speaks) with a device's login and the id it claims."""
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
        client.username_pw_set(login, self.logins[login]["mqtt_password"])
        client.received = []
        client.disconnects = []
        client.on_message = lambda _client, _userdata, message: client.received.append(message.topic)
        client.on_disconnect = lambda *args: client.disconnects.append(time.monotonic())
        return client

    def publish(self, events, interval_s=0.0):
        """The honest device's events, QoS 1, on its own topic; each handed to the broker."""
        client = self.client(DEVICE, DEVICE)
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        for _, _, message in events:
            client.publish(f"tc/v1/{DEVICE}/ev", message, qos=1).wait_for_publish(10)
            time.sleep(interval_s)
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def secured(tmp_path):
    system = Secured(tmp_path)
    system.broker.start()
    yield system
    system.gateway.stop()
    system.broker.stop()


def test_a_device_claiming_the_gateways_id_does_not_disconnect_it_or_take_its_messages(secured):
    secured.gateway.start()
    stop = threading.Event()
    intruders = []

    def claim_the_gateway_id():
        while not stop.is_set():  # a new connection every 0.4 s, each keeping the session (no clean session)
            intruder = secured.client(INTRUDER, GATEWAY)
            intruder.connect("127.0.0.1", secured.broker.port)
            intruder.loop_start()
            intruders.append(intruder)
            stop.wait(0.4)
        for intruder in intruders:
            intruder.disconnect()
            intruder.loop_stop()

    attack = threading.Thread(target=claim_the_gateway_id)
    attack.start()
    try:
        secured.publish(secured.events, interval_s=0.1)  # 60 events over 6 s while the intruder keeps trying
    finally:
        stop.set()
        attack.join(10)
    assert len(intruders) >= 12
    assert wait_until(lambda: secured.gateway.count(DEVICE) == len(secured.events), 15), secured.gateway.count(DEVICE)
    assert [intruder.received for intruder in intruders if intruder.received] == []
    assert "disconnected from the broker" not in secured.gateway.log.read_text()


def test_a_clean_start_with_the_gateways_id_does_not_wipe_its_queued_session(secured):
    secured.gateway.start()
    secured.gateway.stop()  # its session (subscriptions, queue) stays in the broker
    events = secured.events[:50]
    secured.publish(events)
    intruder = secured.client(INTRUDER, GATEWAY, clean_session=True)
    intruder.connect("127.0.0.1", secured.broker.port)
    intruder.loop_start()
    assert wait_until(intruder.is_connected, 5)
    intruder.disconnect()
    intruder.loop_stop()
    secured.gateway.start()
    assert wait_until(lambda: secured.gateway.count(DEVICE) == 50, 20), f"{secured.gateway.count(DEVICE)} of 50"
    assert [seq for seq, _, _ in secured.gateway.events(DEVICE)] == list(range(1, 51))


def test_a_device_cannot_take_another_devices_id(secured):
    device = secured.client(DEVICE, DEVICE)
    device.connect("127.0.0.1", secured.broker.port)
    device.loop_start()
    assert wait_until(device.is_connected, 5)
    intruders = []
    try:
        for _ in range(5):
            intruder = secured.client(INTRUDER, DEVICE)
            intruder.connect("127.0.0.1", secured.broker.port)
            intruder.loop_start()
            intruders.append(intruder)
            assert wait_until(intruder.is_connected, 5)
            time.sleep(0.5)
        assert device.disconnects == [] and device.is_connected()
    finally:
        for client in (device, *intruders):
            client.disconnect()
            client.loop_stop()
