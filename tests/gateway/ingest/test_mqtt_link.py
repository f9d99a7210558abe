"""The MQTT session in a child process: batches up, acks only when told, a new child when one dies, and no
child left behind when the gateway dies."""

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.ingest.mqtt_link import LinkSettings, MqttChild

from conftest import ROOT


def settings(broker, client_id="link-test"):
    return LinkSettings("127.0.0.1", broker.port, client_id, "", "", ("tc/v1/+/ev",))


class Device:
    """A paho client standing in for counters: publishes events, collects what comes back on its ack topics."""

    def __init__(self, broker):
        self.acks = queue.SimpleQueue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"device-{os.getpid()}")
        self.client.on_message = lambda client, userdata, message: self.acks.put((message.topic, message.payload))
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe("tc/v1/+/ack", qos=1)
        self.client.loop_start()

    def publish(self, count, first=0):
        for number in range(first, first + count):
            self.client.publish("tc/v1/d1/ev", b"event-%d" % number, qos=1).wait_for_publish(5)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class Collector:
    def __init__(self):
        self.batches = []
        self.got = threading.Condition()

    def __call__(self, batch):
        with self.got:
            self.batches.append(batch)
            self.got.notify_all()

    def messages(self):
        return [item for batch in self.batches for item in batch]

    def wait_for(self, count, timeout=10):
        with self.got:
            assert self.got.wait_for(lambda: len(self.messages()) >= count, timeout), len(self.messages())
        return self.messages()


def started_link(broker, collector):
    link = MqttChild(settings(broker), collector)
    link.start()
    assert link.wait_connected(10)
    return link


@pytest.fixture
def device(broker):
    counter = Device(broker)
    yield counter
    counter.close()


def test_messages_come_up_in_batches_and_are_acknowledged_only_when_told(broker, device):
    collector = Collector()
    link = started_link(broker, collector)
    try:
        device.publish(300)
        received = collector.wait_for(300)
        assert [payload for _, _, _, payload, _ in received] == [b"event-%d" % n for n in range(300)]
        assert {topic for _, _, topic, _, _ in received} == {"tc/v1/d1/ev"}
        assert len(collector.batches) < 300  # several messages per pipe send
        link.done([("tc/v1/d1/ack", b"ack-of-100", 1)], [(mid, qos) for mid, qos, *_ in received[:100]])
        assert device.acks.get(timeout=5) == ("tc/v1/d1/ack", b"ack-of-100")
    finally:
        link.stop()  # 200 messages were never acknowledged: the broker keeps them for the session
    again = Collector()
    link = started_link(broker, again)
    try:
        redelivered = again.wait_for(200)
        assert [payload for *_, payload, _ in redelivered] == [b"event-%d" % n for n in range(100, 300)]
    finally:
        link.stop()


def test_a_new_child_when_the_child_dies_and_the_broker_resends_what_it_held(broker, device):
    collector = Collector()
    link = started_link(broker, collector)
    try:
        device.publish(50)
        first = collector.wait_for(50)
        os.kill(link._process.pid, signal.SIGKILL)
        device.publish(50, first=50)
        everything = collector.wait_for(150, timeout=20)  # the 50 unacked again, then the 50 new
        payloads = [payload for *_, payload, _ in everything]
        assert set(payloads) == {b"event-%d" % n for n in range(100)}
        resent = {payload: mid for mid, _, _, payload, _ in everything[50:]}
        assert all(resent[payload] == mid for mid, _, _, payload, _ in first)  # same packet ids after the restart
        assert link.wait_connected(5) and link.alive
    finally:
        link.stop()


def test_the_child_ends_when_its_parent_is_killed(broker):
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from gateway.ingest.mqtt_link import MqttChild, LinkSettings
        if __name__ == "__main__":
            link = MqttChild(LinkSettings("127.0.0.1", {broker.port}, "orphan-test", "", "", ("tc/v1/+/ev",)), print)
            link.start()
            link.wait_connected(10)
            print(link._process.pid, flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}") and _state(child) != "Z":
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{child}") or _state(child) == "Z"


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"
