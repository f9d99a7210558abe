"""Run a real Mosquitto with the gateway's broker configuration, for tests, benchmarks and the demo."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Protocol, Self

import gateway
from tools.certs import TlsFiles

CONFIG_TEMPLATE = Path(gateway.__file__).resolve().parent / "mosquitto.conf.in"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def add_service_user(password_file: Path, acl_file: Path, user: str, password: str, topic: str = "tc/v1/#") -> None:
    """Add a broker user that reads and writes `topic` (a gateway instance, a POS, a test client), as
    docs/technician-guide.md tells operators to; with a password file the user name is also the client id."""
    password_file.touch(mode=0o600, exist_ok=True)
    subprocess.run(["mosquitto_passwd", "-b", str(password_file), user, password], check=True, capture_output=True)
    with open(acl_file, "a") as acl:
        acl.write(f"\nuser {user}\ntopic readwrite {topic}\n")


def mosquitto_path() -> str | None:
    """The mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return found if os.path.exists(found) else None


class MqttBroker(Protocol):
    """What the gateway process and the demo need of a broker."""

    @property
    def name(self) -> str: ...

    @property
    def port(self) -> int:
        """For the counters (MQTT 3.1.1)."""

    @property
    def gateway_port(self) -> int:
        """For the gateway (MQTT 5); the same port on Mosquitto."""

    def start(self, timeout_s: float = 10) -> None: ...

    def stop(self, *, kill: bool = False) -> None: ...


class BrokerProcess:
    """A broker as a child process: started until its ports listen, stopped by a signal."""

    folder: Path
    process: subprocess.Popen[bytes] | None = None

    def _launch(self, command: list[str], log_name: str, ports: list[int], timeout_s: float) -> None:
        log_path = self.folder / log_name
        log = open(log_path, "ab")  # noqa: SIM115  (kept open for the process's life)
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{Path(command[0]).name} exited: {log_path.read_text()[-2000:]}")
            if all(listening(port) for port in ports):
                return
            time.sleep(0.05)
        self.stop(kill=True)
        raise RuntimeError(f"{Path(command[0]).name} did not listen on {ports} within {timeout_s} s")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 10) -> None:
        raise NotImplementedError


def listening(port: int) -> bool:
    """Something accepts connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker(BrokerProcess):
    """One mosquitto process on a loopback port, its data (persistence) in `folder`."""

    name = "Mosquitto"

    def __init__(self, folder: Path, *, port: int | None = None, password_file: Path | None = None,
                 acl_file: Path | None = None, tls: TlsFiles | None = None, bind: str = "127.0.0.1") -> None:
        """`bind`: 0.0.0.0 when a real board on the network must reach this broker. With a `password_file` every
        client's id is its user name (use_username_as_clientid); without one, clients are anonymous."""
        self.bind = bind
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password_file = password_file
        self.acl_file = acl_file
        self.tls = tls
        self.tls_port = free_port() if tls else 0

    @property
    def gateway_port(self) -> int:
        return self.port

    def _config(self) -> Path:
        auth = []
        if self.password_file:
            auth.append(f"password_file {self.password_file}")
        if self.acl_file:
            auth.append(f"acl_file {self.acl_file}")
        if self.tls:
            auth += [f"listener {self.tls_port} 127.0.0.1", f"cafile {self.tls.ca_cert}",
                     f"certfile {self.tls.server_cert}", f"keyfile {self.tls.server_key}"]
        text = CONFIG_TEMPLATE.read_text().format(
            port=self.port, bind=self.bind, user=getpass.getuser(),
            allow_anonymous="false" if self.password_file else "true",
            use_username_as_clientid="true" if self.password_file else "false",
            auth_lines="\n".join(auth), data_dir=self.folder,
        )
        path = self.folder / "mosquitto.conf"
        path.write_text(text)
        return path

    def start(self, timeout_s: float = 10) -> None:
        executable = mosquitto_path()
        if executable is None:
            raise RuntimeError("mosquitto not found: apt-get install mosquitto")
        self._launch([executable, "-c", str(self._config())], "mosquitto.log", [self.port], timeout_s)
