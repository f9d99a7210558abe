"""Whole-system fixtures (a pytest plugin, see tests/conftest.py): Mosquitto, the gateway process, virtual devices."""

from __future__ import annotations

import os
import time

import pytest
from stores import fresh_database

from harness.broker import Broker
from harness.gateway_process import GatewayProcess
from harness.virtual_device import VirtualDevice
from tools.platform_sim import Faults, PlatformSim


@pytest.fixture
def broker(tmp_path):
    running = Broker(tmp_path / "broker")
    running.start()
    yield running
    running.stop()


@pytest.fixture
def gateway(tmp_path, broker):
    (tmp_path / "gateway").mkdir()
    process = GatewayProcess(tmp_path / "gateway", broker, database=fresh_database())
    yield process
    process.stop()


@pytest.fixture
def platform(tmp_path):
    """The platform simulator, no faults until a test sets them; a hang, when set, lasts 1.5 s."""
    with PlatformSim(tmp_path / "platform.sqlite3", Faults(hang_ms=1500), seed=7) as sim:
        yield sim


@pytest.fixture
def quiet_gateway(tmp_path, broker):
    """A gateway that sends no time commands of its own (for tests that number commands themselves)."""
    (tmp_path / "gateway").mkdir()
    process = GatewayProcess(tmp_path / "gateway", broker, set_clocks=False, database=fresh_database())
    yield process
    process.stop()


@pytest.fixture
def device_key():
    return os.urandom(32)


MICROPYTHON_BUILDS = ("micropython", "micropython-aarch64")
"""The MicroPython builds a test marked `on_builds` runs on: the host's executable (the PyPI wheel, x86-64) and
the Raspberry Pi's (aarch64, the committed unix-port executable, under qemu-aarch64 on a PC)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "on_builds: the test's devices run on every MicroPython build of "
                            "MICROPYTHON_BUILDS (tests/system/fixtures.py), one test case each")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("on_builds") and "micropython_build" in metafunc.fixturenames:
        metafunc.parametrize("micropython_build", MICROPYTHON_BUILDS, indirect=True)


@pytest.fixture
def micropython_build(request):
    """The MicroPython build the test's devices run on: the host's executable unless the test is `on_builds`."""
    return getattr(request, "param", "micropython")


@pytest.fixture
def make_device(tmp_path, broker, device_key, micropython_build):
    made: list[VirtualDevice] = []

    def make(name: str = "dev-0001", interpreter: str = micropython_build, **overrides: object) -> VirtualDevice:
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
