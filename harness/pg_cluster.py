"""A throwaway PostgreSQL cluster on a loopback port (Debian's `postgresql` binaries), for tests and benchmarks.

PostgreSQL refuses to run as root, so under root the cluster runs as `nobody`
in a folder of its own under /tmp (pytest's tmp folders are root-only).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.broker import free_port

__all__ = ["PgCluster", "binaries", "throwaway_database"]

SUPERUSER = "postgres"


def binaries() -> Path:
    """The folder with initdb and postgres: the newest /usr/lib/postgresql/N/bin, or pg_config's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda path: int(path.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        return Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
    raise RuntimeError("PostgreSQL server not found: apt-get install postgresql")


class PgCluster:
    """initdb + postgres on 127.0.0.1:`port`; `durable=False` turns fsync off (tests that never kill PostgreSQL)."""

    def __init__(self, *, port: int | None = None, durable: bool = True) -> None:
        self.port = port or free_port()
        self.durable = durable
        self.folder = Path(tempfile.mkdtemp(prefix="tracecode-pg-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._user = {"user": "nobody", "group": "nogroup", "extra_groups": []} if os.geteuid() == 0 else {}
        if self._user:
            shutil.chown(self.folder, "nobody", "nogroup")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 30) -> None:
        bindir = binaries()
        data = self.folder / "data"
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                        "--locale=C", "--no-sync"], check=True, capture_output=True, **self._user)  # type: ignore[call-overload]
        settings = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.folder}",
                    "-c", "max_connections=200", "-c", "shared_buffers=256MB"]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        log = open(self.folder / "postgres.log", "ab")  # noqa: SIM115  (kept open for the process's life)
        self.process = subprocess.Popen([str(bindir / "postgres"), "-D", str(data), "-p", str(self.port), *settings],
                                        stdout=log, stderr=log, **self._user)  # type: ignore[call-overload]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.folder / 'postgres.log').read_text()[-2000:]}")
            ready = subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections on port {self.port} within {timeout_s} s")

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def throwaway_database(kind: str, name: str) -> Iterator[str]:
    """For `kind` "sqlite": "" (the gateway's own file); for "postgresql": the URL of database `name` on a durable
    throwaway cluster, stopped on exit."""
    if kind == "sqlite":
        yield ""
        return
    with PgCluster() as cluster:
        yield cluster.create_database(name)
