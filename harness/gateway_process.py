"""The gateway as its own process (`trace-gateway run`), for tests, benchmarks and the demo: it can be killed."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.store.base import Device, Store
from gateway.store.opening import open_store
from harness.broker import MqttBroker, free_port
from harness.embedded_broker import choose_broker
from tools.paths import installed

FORWARD_DEFAULTS = {
    "opter": "0001", "opter_name": "收银员", "mdtrtarea_admvs": "440300", "insuplc_admdvs": "440300",
    "phar_name": "药师甲", "phar_prac_cert_no": "YS0001", "prsc_dr_name": "-", "mdtrt_sn": "-", "rx_flag": "0",
    "manu_lotnum": "-", "manu_date": "2026-01-01", "spler_name": "供应商甲", "prodentp_name": "生产企业甲",
    "aprvno": "国药准字H00000000", "inv_chg_type": "104", "pric": "0",
}
"""Platform values for tests and the demo: what an operator puts in forward.defaults for a pharmacy."""


def forward_toml(base_url: str, institutions: dict[str, str], **options: object) -> str:
    """The [forward] tables for `base_url`, with FORWARD_DEFAULTS and a name per institution code."""
    lines = ["[forward]", f'base_url = "{base_url}"']
    lines += [f"{key} = {str(value).lower() if isinstance(value, bool) else value}" if not isinstance(value, str)
              else f'{key} = "{value}"' for key, value in options.items()]
    lines += ["[forward.defaults]"] + [f'{key} = "{value}"' for key, value in FORWARD_DEFAULTS.items()]
    for code, name in institutions.items():
        lines += [f'[forward.institutions."{code}"]', f'fixmedins_name = "{name}"']
    return "\n".join(lines) + "\n"


READ_TOKEN = "test-read-token"
WRITE_TOKEN = "test-write-token"


class GatewayProcess:
    """`trace-gateway run` as its own process, so it can be killed like a real service."""

    def __init__(self, folder: Path, broker: MqttBroker, *, set_clocks: bool = True, shared_group: str = "",
                 extra_toml: str = "", mqtt_user: str = "", mqtt_password: str = "",
                 data_dir: Path | None = None, database: str = "", client_id: str = "") -> None:
        """`data_dir`: the token files and the SQLite database (default folder/data), e.g. the registry
        trace-provision wrote; `database`: a postgresql:// URL instead (several instances share it); `client_id`:
        default the broker user (a broker with users binds ids to user names), else gw-<folder name>."""
        self.folder = folder
        self.client_id = client_id or mqtt_user or f"gw-{folder.name}"
        data = data_dir or folder / "data"
        self.broker = broker
        self.config = folder / "gateway.toml"
        self.api_port = free_port()
        self.config.write_text(
            f'data_dir = "{data}"\ndatabase = "{database}"\nlog_level = "WARNING"\n'
            f'[ingest]\nbroker_port = {broker.gateway_port}\nclient_id = "{self.client_id}"\n'
            f'set_clocks = {"true" if set_clocks else "false"}\nshared_group = "{shared_group}"\n'
            f'username = "{mqtt_user}"\npassword = "{mqtt_password}"\n'
            f'[api]\nport = {self.api_port}\ntoken = "{READ_TOKEN}"\nwrite_token = "{WRITE_TOKEN}"\n'
            f'[rules]\nsweep_interval_s = 1\n' + extra_toml
        )
        self.data_dir = data
        self.location = database or str(data / "gateway.sqlite3")
        """The store, for `open_store`."""
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "gateway.log"

    def register(self, device: str, key: bytes, terminal: str = "T01", institution: str = "P44030000001",
                 institution_type: str = "pharmacy", region: str = "440300") -> None:
        store = open_store(self.location)
        store.add_device(Device(device=device, key=key, terminal=terminal, institution=institution,
                                institution_type=institution_type, region=region))
        store.close()

    def api(self, method: str, path: str, body: bytes | None = None, *, write: bool = False) -> tuple[int, object]:
        """Call the gateway's HTTP API; (status, decoded JSON or text)."""
        return api_call(self.api_port, method, path, WRITE_TOKEN if write else READ_TOKEN, body)

    def start(self, env: dict[str, str] | None = None) -> None:
        """Start and wait for "ready"; `env` adds to the environment (e.g. NOTIFY_SOCKET)."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [installed("trace-gateway") or "trace-gateway", "--config", str(self.config), "run"],
                stdout=subprocess.PIPE, stderr=log, env={**os.environ, **(env or {})},
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
        with self.store() as store:
            rows = store.query("SELECT seq, signed, verdict FROM events WHERE device = ? ORDER BY seq", (device,))
        return [(int(seq), bytes(signed), int(verdict)) for seq, signed, verdict in rows]

    def count(self, device: str) -> int:
        with self.store() as store:
            return int(store.query("SELECT count(*) FROM events WHERE device = ?", (device,))[0][0])

    def quarantine(self) -> list[tuple[object, ...]]:
        with self.store() as store:
            return store.query("SELECT reason, detail, times FROM quarantine")

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The gateway's database, opened beside the running process."""
        store = open_store(self.location)
        try:
            yield store
        finally:
            store.close()


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the gateway's MQTT link), from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        if parent == pid:
            children.append(int(stat.parent.name))
    return children


@contextmanager
def running_system(folder: Path, devices: dict[str, bytes], extra_toml: str = "",
                   broker_choice: str = "mosquitto") -> Iterator[tuple[MqttBroker, GatewayProcess]]:
    """A broker (`choose_broker`) and the gateway, with `devices` (name -> key) registered; both stopped on exit."""
    broker = choose_broker(folder / "broker", broker_choice)
    broker.start()
    (folder / "gateway").mkdir(exist_ok=True)
    gateway = GatewayProcess(folder / "gateway", broker, extra_toml=extra_toml)
    try:
        for name, key in devices.items():
            gateway.register(name, key)
        gateway.start()
        yield broker, gateway
    finally:
        gateway.stop()
        broker.stop()


def api_call(port: int, method: str, path: str, token: str, body: bytes | None = None) -> tuple[int, object]:
    """One call to a gateway's HTTP API on this machine as `token`; (status, decoded JSON or text)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()
