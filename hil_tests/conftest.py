"""The hardware-in-the-loop suite's options, the system around the device under test, and the summary table.

    python -m pytest hil_tests --target virtual --junitxml=artifacts/hil-junit.xml
    python -m pytest hil_tests --target serial:/dev/ttyUSB0 --scanner /dev/ttyUSB1 --broker-host 192.168.1.20

Each test gets its own Mosquitto (password file and ACL as provisioning writes them), its own gateway process,
and the device under test started with a config pointing at them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.broker import Broker  # noqa: E402
from harness.gateway_process import GatewayProcess  # noqa: E402
from hil_tests.targets import make_target  # noqa: E402
from tools.provision import _passwd, write_acl  # noqa: E402

DEVICE = "hil-dut"
FIGURES: dict[str, dict[str, object]] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "device under test")
    group.addoption("--target", default="virtual", help="virtual, pi-qemu (the Raspberry Pi's executable under "
                    "qemu-aarch64), rp2040 (the RP2040 model, PPP to this machine), or serial:PORT (the board's USB "
                    "console)")
    group.addoption("--scanner", default="", help="serial targets: the USB-UART adapter wired to the board's "
                    "scan-engine UART")
    group.addoption("--reset", default="rts", choices=["rts", "mpremote"], help="serial targets: how to hard-reset")
    group.addoption("--broker-host", default="127.0.0.1", help="the address the device reaches this machine at")


@pytest.fixture
def record(request: pytest.FixtureRequest, record_property):
    """Record a figure for the summary table and the JUnit XML."""
    def keep(name: str, value: object) -> None:
        FIGURES.setdefault(request.node.nodeid, {})[name] = value
        record_property(name, value)

    return keep


@pytest.fixture
def system(tmp_path, request):
    """Broker (with auth and ACL), gateway, and the device's registered key and password."""
    key = os.urandom(32)
    device_password, gateway_password = os.urandom(12).hex(), os.urandom(12).hex()
    _passwd(tmp_path / "passwd", DEVICE, device_password)
    _passwd(tmp_path / "passwd", "gateway", gateway_password)
    _passwd(tmp_path / "passwd", "other", "other-password")
    write_acl(tmp_path / "acl", DEVICE)
    write_acl(tmp_path / "acl", "other")
    with open(tmp_path / "acl", "a") as acl:
        acl.write("\nuser gateway\ntopic readwrite tc/v1/#\n")
    spec = request.config.getoption("--target")
    on_board = spec not in ("virtual", "pi-qemu")  # the others keep their data on the board's own file system
    # a board on the shop network reaches this machine's address; the model's PPP peer reaches its loopback
    broker = Broker(tmp_path / "broker", password_file=tmp_path / "passwd", acl_file=tmp_path / "acl",
                    bind="0.0.0.0" if spec.startswith("serial:") else "127.0.0.1")
    broker.start()
    (tmp_path / "gateway").mkdir()
    gateway = GatewayProcess(tmp_path / "gateway", broker, mqtt_user="gateway", mqtt_password=gateway_password)
    gateway.register(DEVICE, key, terminal="HIL-1")
    gateway.start()
    config = {"device_id": DEVICE, "key_hex": key.hex(), "broker_host": request.config.getoption("--broker-host"),
              "broker_port": broker.port, "mqtt_password": device_password, "status_interval_s": 5,
              "ack_timeout_s": 3, "debounce_ms": 800, "backoff_max_s": 2, "data_dir": f"hil-{time.time_ns()}"}
    if not on_board:
        config["data_dir"] = str(tmp_path / "device-data")
    yield {"broker": broker, "gateway": gateway, "config": config, "key": key, "password": device_password}
    gateway.stop()
    broker.stop()


@pytest.fixture
def target(request, tmp_path):
    made = make_target(request.config.getoption("--target"), tmp_path / "dut",
                       scanner=request.config.getoption("--scanner"), reset=request.config.getoption("--reset"))
    yield made
    made.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    reports = [report for kind in ("passed", "failed", "skipped", "error")
               for report in terminalreporter.stats.get(kind, []) if getattr(report, "when", "") == "call"
               or kind in ("skipped", "error")]
    if not reports:
        return
    terminalreporter.section(f"HIL summary, target {config.getoption('--target')}")
    if config.getoption("--target") == "pi-qemu":
        terminalreporter.write_line("(times and latencies under qemu-aarch64 emulation: not speed figures of a Pi)")
    rows = [("test", "result", "s", "figures")]
    for report in reports:
        name = report.nodeid.split("::")[-1]
        figures = ", ".join(f"{key} {value}" for key, value in FIGURES.get(report.nodeid, {}).items())
        rows.append((name, report.outcome.upper(), f"{getattr(report, 'duration', 0.0):.1f}", figures))
    widths = [max(len(row[index]) for row in rows) for index in range(3)]
    for row in rows:
        terminalreporter.write_line("  ".join(cell.ljust(widths[index]) if index < 3 else cell
                                              for index, cell in enumerate(row)))
