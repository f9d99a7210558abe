"""A virtual counter device: the real firmware on the micropython executable (or CPython), a pty as its scan engine.

Used by the tests, the hardware-in-the-loop suite's `--target virtual` and the demo.
The agent's signals arrive as lines on its standard output (`signal taken seq=12`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.paths import FIRMWARE, build_arch, compile_firmware, micropython_command, micropython_env


class LineLog:
    """An agent's output lines as they arrive, with their arrival times, and waiting for one of them.

    Shared by the virtual device (a process's stdout) and the HIL suite's serial target (a board's console).
    """

    def __init__(self, ended: Callable[[], bool] = lambda: False) -> None:
        self.lines: list[str] = []
        self.stamps: list[float] = []  # time.monotonic() when each line arrived
        self._changed = threading.Condition()
        self._ended = ended

    def add(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self.stamps.append(time.monotonic())
            self._changed.notify_all()

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def when(self, pattern: str, *, timeout: float = 10, start: int = 0) -> float:
        """The arrival time (time.monotonic) of the first line from index `start` on matching `pattern`."""
        self.wait_for(pattern, timeout=timeout, start=start)
        expression = re.compile(pattern)
        with self._changed:
            for index in range(start, len(self.lines)):
                if expression.search(self.lines[index]):
                    return self.stamps[index]
        raise AssertionError("unreachable: wait_for found the line")

    def wait_for(self, pattern: str, *, timeout: float = 10, start: int = 0) -> re.Match[str]:
        """The first line from index `start` on that matches `pattern`, waiting up to `timeout` s."""
        expression = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = start
        with self._changed:
            while True:
                while index < len(self.lines):
                    found = expression.search(self.lines[index])
                    if found:
                        return found
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0 or self._ended():
                    tail = "\n".join(self.lines[-20:])
                    raise TimeoutError(f"no output line matching {pattern!r} within {timeout} s; last lines:\n{tail}")
                self._changed.wait(min(left, 0.5))

    def count(self, pattern: str) -> int:
        expression = re.compile(pattern)
        with self._changed:
            return sum(1 for line in self.lines if expression.search(line))

    def snapshot(self) -> list[str]:
        with self._changed:
            return list(self.lines)


class VirtualDevice:
    """One agent process with its own data folder, config file and pty."""

    def __init__(self, folder: Path, config: dict[str, Any], *, interpreter: str = "micropython",
                 heap: str = "", compiled: bool = False) -> None:
        """`interpreter`: cpython, or a MicroPython build as tools.paths.micropython_command names it
        (micropython, micropython-aarch64, ...)."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config = dict(config)
        self.config.setdefault("data_dir", str(self.folder / "data"))
        self.interpreter = interpreter
        self.heap = heap
        self.compiled = compiled
        self.process: subprocess.Popen[bytes] | None = None
        self.log = LineLog(lambda: self.process is not None and self.process.poll() is not None)
        self.lines = self.log.lines
        self._master = -1

    def start(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        self._master = master
        self._slave = slave
        self.config["uart"] = {**self.config.get("uart", {}), "port": os.ttyname(slave)}
        config_path = self.folder / "config.json"
        config_path.write_text(json.dumps(self.config))
        config_path.chmod(0o600)
        if self.interpreter.startswith("micropython"):
            command = [*micropython_command(self.interpreter), *(["-X", f"heapsize={self.heap}"] if self.heap else [])]
            if self.compiled:  # .mpy files, as a board runs them: no compiling at import, less heap
                command += ["-m", "main"]
                code = compile_firmware(self.folder / "mpy", build_arch(micropython_command(self.interpreter)))
            else:
                command.append(str(FIRMWARE / "main.py"))
                code = FIRMWARE
            env = micropython_env(code)
        else:
            command = [sys.executable, "-u", str(FIRMWARE / "main.py")]
            code = FIRMWARE
            env = {**os.environ, "PYTHONPATH": str(FIRMWARE)}
        self.process = subprocess.Popen([*command, str(config_path)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        threading.Thread(target=self._collect, args=(self.process,), daemon=True).start()
        booted = self.wait_for(r"^log agent .*, code (\S+)$", timeout=20)
        # an executable with the agent frozen in must still run today's code, from the folder given
        if not booted.group(1).startswith(str(code) + "/"):
            raise RuntimeError(f"the agent runs from {booted.group(1)}, not from today's code in {code}")

    def _collect(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self.log.add(raw.decode("utf-8", "replace").rstrip("\n"))
        self.log.wake()

    def scan(self, line: bytes | str, suffix: bytes = b"\r\n") -> None:
        """What the scan engine sends for one read."""
        os.write(self._master, (line.encode() if isinstance(line, str) else line) + suffix)

    def send_raw(self, data: bytes) -> None:
        os.write(self._master, data)

    def when(self, pattern: str, *, timeout: float = 10, start: int = 0) -> float:
        return self.log.when(pattern, timeout=timeout, start=start)

    def wait_for(self, pattern: str, *, timeout: float = 10, start: int = 0) -> re.Match[str]:
        return self.log.wait_for(pattern, timeout=timeout, start=start)

    def taken(self) -> list[int]:
        """Seqs the device signalled as taken (on flash), in order."""
        return [int(match.group(1)) for line in self.log.snapshot()
                if (match := re.match(r"signal taken seq=(\d+)", line))]

    def count(self, pattern: str) -> int:
        return self.log.count(pattern)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """A power cut: SIGKILL, nothing flushed that was not flushed already."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, how: signal.Signals) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(how)
            self.process.wait(timeout=10)
            self.process = None
        for fd in (self._master, getattr(self, "_slave", -1)):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = -1
        self._slave = -1

    def __enter__(self) -> VirtualDevice:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prefill_journal(data_dir: Path, device: str, key: bytes, count: int, *, capacity: int = 4 * 1024 * 1024) -> None:
    """Write `count` signed events into a device's journal with the firmware's own modules (on CPython)."""
    sys.path.insert(0, str(FIRMWARE))
    from tcagent import journal
    from tcagent.codec import codes, cose, event

    mac_key = cose.MacKey(key)
    store = journal.Journal(str(data_dir / "journal"), capacity, 16384, 1280)
    for number in range(count):
        seq = store.next_seq()
        scan = codes.decode(f"8123456{number:013d}".encode())
        payload = event.encode(device, seq, 1, 0, number, 0, 1, scan, "", 0)
        store.append(seq, cose.sign(mac_key, payload, device.encode()))
    store.close()
