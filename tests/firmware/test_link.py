"""The link against a real Mosquitto on both interpreters, given only its LinkPort, no agent:
it publishes the journal in batches, the acks reach the port's handler, the status goes out retained."""

import threading

import cbor2
import paho.mqtt.client as paho
import pytest

from gateway.wire.messages import split_messages
from harness.broker import Broker

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with Broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


class Gateway:
    """Acks every event the device publishes: the seq of the last one received so far."""

    def __init__(self, port, device):
        self.received = []  # the number of events in each message
        self.statuses = []
        self.ack_topic = f"tc/v1/{device}/ack"
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"gw-{device}")
        self.client.on_message = self._message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(f"tc/v1/{device}/ev", 1), (f"tc/v1/{device}/status", 1)])
        self.client.loop_start()

    def _message(self, client, userdata, message):
        if message.topic.endswith("/status"):
            self.statuses.append(cbor2.loads(message.payload))
            return
        self.received.append(len(split_messages(message.payload)))
        client.publish(self.ack_topic, cbor2.dumps({0: 1, 1: sum(self.received), 2: []}), qos=1)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def test_the_link_delivers_the_journal_through_its_port(fw, broker, tmp_path):
    device = f"link-{fw.name}"
    gateway = Gateway(broker.port, device)
    try:
        assert gateway.subscribed.wait(5)
        result = fw.call("link_deliver", broker.port, str(tmp_path), KEY, 7, device=device)
    finally:
        gateway.close()
    assert result["acked_seq"] == 7
    assert sum(gateway.received) == 7 and max(gateway.received) <= 3  # batch_max 3: a backlog goes in batches
    assert set(result["handled"]) == {f"tc/v1/{device}/ack"}
    assert result["statuses"] and gateway.statuses[0] == {0: 1, 1: True, 4: result["statuses"][0]}
    assert result["connects"] == 1 and result["resends"] == 0
    assert result["signals"][0] == "online"
