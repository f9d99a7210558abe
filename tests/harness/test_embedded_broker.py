"""The demo's fallback broker: rumqttd carries counters' MQTT 3.1.1 to the gateway's MQTT 5 session."""

import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness import embedded_broker
from harness.broker import Broker
from harness.embedded_broker import EmbeddedBroker, choose_broker


class GatewaySession:
    """What the gateway's ingest does by default: MQTT 5, a persistent session, manual acks."""

    def __init__(self, port: int) -> None:
        self.received: list[bytes] = []
        self.connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="gw-test", protocol=paho.MQTTv5,
                                  manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda client, userdata, mid, reasons, properties: self.connected.set()
        self.client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=properties)
        self.client.loop_start()
        assert self.connected.wait(15)

    def _on_connect(self, client, userdata, flags, reason, properties):
        if flags.session_present:  # a resumed session has its subscription: its queue may come before any SUBACK
            self.connected.set()
        client.subscribe([("tc/v1/+/ev", 1)])  # a new session: connected once the SUBACK is in

    def _on_message(self, client, userdata, message):
        self.received.append(message.payload)
        client.ack(message.mid, message.qos)

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_as_counter(port: int, payloads: list[bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="counter-x", protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for payload in payloads:
        client.publish("tc/v1/counter-x/ev", payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_counter_messages_reach_the_gateway_and_wait_for_its_session(tmp_path):
    with EmbeddedBroker(tmp_path) as broker:
        assert broker.port != broker.gateway_port
        gateway = GatewaySession(broker.gateway_port)
        publish_as_counter(broker.port, [b"live-%d" % n for n in range(50)])
        gateway.wait_for(50)
        assert gateway.received == [b"live-%d" % n for n in range(50)]
        gateway.close()
        publish_as_counter(broker.port, [b"queued-%d" % n for n in range(500)])
        gateway = GatewaySession(broker.gateway_port)  # the same client id: the session kept its messages
        gateway.wait_for(500)
        gateway.close()
    assert gateway.received == [b"queued-%d" % n for n in range(500)]


def test_a_restart_keeps_the_ports_and_forgets_the_sessions(tmp_path):
    broker = EmbeddedBroker(tmp_path)
    broker.start()
    ports = broker.port, broker.gateway_port
    broker.stop()
    broker.start()
    try:
        assert (broker.port, broker.gateway_port) == ports
        gateway = GatewaySession(broker.gateway_port)
        publish_as_counter(broker.port, [b"after restart"])
        gateway.wait_for(1)
        gateway.close()
        assert gateway.received == [b"after restart"]
    finally:
        broker.stop()
    assert "rumqttd exited" not in (tmp_path / "rumqttd.log").read_text()


def test_auto_takes_mosquitto_when_installed_and_the_embedded_broker_otherwise(tmp_path, monkeypatch):
    assert isinstance(choose_broker(tmp_path, "auto"), Broker)  # the test machine has Mosquitto
    monkeypatch.setattr(embedded_broker, "mosquitto_path", lambda: None)
    assert embedded_broker.resolve("auto") == "embedded"
    assert isinstance(choose_broker(tmp_path, "auto"), EmbeddedBroker)
    assert isinstance(choose_broker(tmp_path, "mosquitto"), Broker)
    with pytest.raises(ValueError, match="unknown broker 'hivemq'"):
        choose_broker(tmp_path, "hivemq")
