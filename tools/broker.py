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

import gateway
from tools.certs import TlsFiles

CONFIG_TEMPLATE = Path(gateway.__file__).resolve().parent / "mosquitto.conf.in"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Broker:
    """One mosquitto process on a loopback port, its data (persistence) in `folder`."""

    def __init__(self, folder: Path, *, port: int | None = None, password_file: Path | None = None,
                 acl_file: Path | None = None, tls: TlsFiles | None = None, bind: str = "127.0.0.1") -> None:
        """`bind`: 0.0.0.0 when a real board on the network must reach this broker."""
        self.bind = bind
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password_file = password_file
        self.acl_file = acl_file
        self.tls = tls
        self.tls_port = free_port() if tls else 0
        self.process: subprocess.Popen[bytes] | None = None

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
            auth_lines="\n".join(auth), data_dir=self.folder,
        )
        path = self.folder / "mosquitto.conf"
        path.write_text(text)
        return path

    def start(self, timeout_s: float = 10) -> None:
        executable = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(executable):
            raise RuntimeError("mosquitto not found: apt-get install mosquitto")
        log = open(self.folder / "mosquitto.log", "ab")  # noqa: SIM115  (kept open for the process's life)
        self.process = subprocess.Popen([executable, "-c", str(self._config())], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.folder / 'mosquitto.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout_s} s")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
