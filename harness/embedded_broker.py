"""The demo's broker when Mosquitto is not installed: rumqttd, from the PyPI package iotcore, as a child process.

rumqttd speaks MQTT 3.1.1 and MQTT 5 on separate listeners, so it gets two loopback ports: `port` for the
counters (the firmware's client is 3.1.1) and `gateway_port` for the gateway (MQTT 5: shared subscription,
session expiry). Messages cross between them. It keeps sessions and queued QoS 1 messages in memory only
(for a shared subscription only its 100 in flight, so it serves one gateway, not several), has no ACL, and
loses everything when it stops; nothing is lost for all that, because a counter keeps every event
in its journal until the gateway acknowledges it, and sends it again after `ack_timeout_s`. For tests, the
benchmarks and production the broker is Mosquitto (harness/broker.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.broker import Broker, BrokerProcess, MqttBroker, free_port, mosquitto_path

CONFIG = """\
id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "devices"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 65536
    max_inflight_count = 100
    dynamic_filters = true

[v5.1]
name = "gateway"
listen = "127.0.0.1:{gateway_port}"
next_connection_delay_ms = 1
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 65536
    max_inflight_count = 100
"""


class EmbeddedBroker(BrokerProcess):
    """rumqttd (`python -m iotcore`) on two loopback ports, which it keeps across restarts."""

    name = "the embedded broker (rumqttd from the PyPI package iotcore; memory only, no ACL)"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.gateway_port = free_port()

    def start(self, timeout_s: float = 10) -> None:
        config = self.folder / "rumqttd.toml"
        config.write_text(CONFIG.format(port=self.port, gateway_port=self.gateway_port))
        self._launch([sys.executable, "-m", "iotcore", "--config", str(config)], "rumqttd.log",
                     [self.port, self.gateway_port], timeout_s)


def resolve(choice: str) -> str:
    """"auto" becomes "mosquitto" when Mosquitto is installed, else "embedded"; other choices stay."""
    if choice == "auto":
        return "mosquitto" if mosquitto_path() else "embedded"
    return choice


def choose_broker(folder: Path, choice: str = "auto") -> MqttBroker:
    """The broker for "mosquitto", "embedded" or "auto" (see `resolve`), not started."""
    choice = resolve(choice)
    if choice == "mosquitto":
        return Broker(folder)
    if choice == "embedded":
        return EmbeddedBroker(folder)
    raise ValueError(f"unknown broker {choice!r}: mosquitto, embedded or auto")
