"""Whole-system fixtures (a pytest plugin, see tests/conftest.py): Mosquitto, the gateway process, virtual devices."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gateway.store import Device, SQLiteStore
from tools.broker import Broker
from tools.virtual_device import VirtualDevice


class GatewayProcess:
    """`trace-gateway run` as its own process, so it can be killed like a real service."""

    def __init__(self, folder: Path, broker: Broker) -> None:
        self.folder = folder
        self.broker = broker
        self.config = folder / "gateway.toml"
        self.config.write_text(
            f'data_dir = "{folder / "data"}"\nlog_level = "WARNING"\n'
            f'[ingest]\nbroker_port = {broker.port}\nclient_id = "gw-{folder.name}"\n'
        )
        self.database = folder / "data" / "gateway.sqlite3"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "gateway.log"

    def register(self, device: str, key: bytes, terminal: str = "T01", institution: str = "P44030000001") -> None:
        store = SQLiteStore(self.database)
        store.add_device(Device(device=device, key=key, terminal=terminal, institution=institution))
        store.close()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [shutil.which("trace-gateway") or "trace-gateway", "--config", str(self.config), "run"],
                stdout=subprocess.PIPE, stderr=log,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"gateway did not start: {self.log.read_text()[-3000:]}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.process.wait(timeout=20)
            self.process = None

    def events(self, device: str) -> list[tuple[int, bytes, int]]:
        """(seq, signed bytes, verdict) of every stored event of `device`, by seq."""
        store = SQLiteStore(self.database)
        try:
            rows = store.query("SELECT seq, signed, verdict FROM events WHERE device = ? ORDER BY seq", (device,))
            return [(int(seq), bytes(signed), int(verdict)) for seq, signed, verdict in rows]  # type: ignore[call-overload]
        finally:
            store.close()

    def quarantine(self) -> list[tuple[object, ...]]:
        store = SQLiteStore(self.database)
        try:
            return store.query("SELECT reason, detail, times FROM quarantine")
        finally:
            store.close()


@pytest.fixture
def broker(tmp_path):
    running = Broker(tmp_path / "broker")
    running.start()
    yield running
    running.stop()


@pytest.fixture
def gateway(tmp_path, broker):
    (tmp_path / "gateway").mkdir()
    process = GatewayProcess(tmp_path / "gateway", broker)
    yield process
    process.stop()


@pytest.fixture
def device_key():
    return os.urandom(32)


@pytest.fixture
def make_device(tmp_path, broker, device_key):
    made: list[VirtualDevice] = []

    def make(name: str = "dev-0001", interpreter: str = "micropython", **overrides: object) -> VirtualDevice:
        config = {"device_id": name, "key_hex": device_key.hex(), "broker_host": "127.0.0.1",
                  "broker_port": broker.port, "status_interval_s": 2, "ack_timeout_s": 3, "debounce_ms": 300,
                  **overrides}
        device = VirtualDevice(tmp_path / name, config, interpreter=interpreter)
        made.append(device)
        return device

    yield make
    for device in made:
        device.stop()


def wait_until(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()




class StatusWatcher:
    """Collects a device's retained status messages (decoded) from the broker."""

    def __init__(self, broker: Broker, device: str) -> None:
        import cbor2
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.seen: list[dict[int, object]] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"status-{device}-{os.getpid()}")
        self._client.on_message = lambda client, userdata, message: self.seen.append(cbor2.loads(message.payload))
        self._client.connect("127.0.0.1", broker.port)
        self._client.subscribe(f"tc/v1/{device}/status", qos=1)
        self._client.loop_start()

    def latest(self) -> dict[int, object]:
        return self.seen[-1] if self.seen else {}

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def watch_status(broker):
    watchers: list[StatusWatcher] = []

    def watch(device: str = "dev-0001") -> StatusWatcher:
        watchers.append(StatusWatcher(broker, device))
        return watchers[-1]

    yield watch
    for watcher in watchers:
        watcher.close()
