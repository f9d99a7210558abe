"""Devices under test: the same firmware on the micropython executable (virtual) or on a board (serial).

Both give the suite one interface: `start(config)`, `scan(line)`, the agent's output lines (`signal ...`),
`wait_for(pattern)`, `hard_reset()` and `stop()`.

- virtual: harness/virtual_device.py, its scan engine a pty, reset = kill -9 and start again (a power cut).
- pi-qemu: the same with the Raspberry Pi's executable (firmware/images/unix-aarch64-*, 64-bit Pi OS) under
  qemu-aarch64 (itself on an aarch64 machine), running today's agent ahead of its frozen copy.
- serial:PORT: a MicroPython board with the agent installed (tools/flash.py or firmware.md). The suite copies
  its own test config to the board with mpremote (the board's own config is saved first and put back at the
  end), reads the agent's `signal` lines from the board's console (USB REPL), injects scans through a USB-UART
  adapter wired to the board's scan-engine UART (`--scanner PORT`: adapter TX to the board's RX pin, common
  ground), and hard-resets through RTS (ESP32 boards wire RTS to EN) or, with `--reset mpremote`, by
  `machine.reset()` over the REPL.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness.virtual_device import LineLog, VirtualDevice

__all__ = ["Target", "VirtualTarget", "SerialTarget", "make_target"]


class Target:
    """What every device under test offers; output lines accumulate in `log` (and `lines`, the same list)."""

    kind = ""
    log: LineLog
    lines: list[str]

    def start(self, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def scan(self, line: bytes | str) -> None:
        raise NotImplementedError

    def hard_reset(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def when(self, pattern: str, *, timeout: float = 10, start: int = 0) -> float:
        return self.log.when(pattern, timeout=timeout, start=start)

    def wait_for(self, pattern: str, *, timeout: float = 10, start: int = 0) -> re.Match[str]:
        return self.log.wait_for(pattern, timeout=timeout, start=start)

    def count(self, pattern: str) -> int:
        return self.log.count(pattern)


class VirtualTarget(Target):
    kind = "virtual"

    def __init__(self, folder: Path, *, interpreter: str = "micropython") -> None:
        self.folder = folder
        self.interpreter = interpreter
        self.device: VirtualDevice | None = None
        self.log = LineLog()
        self.lines = self.log.lines

    def start(self, config: dict[str, Any]) -> None:
        self.device = VirtualDevice(self.folder, config, interpreter=self.interpreter)
        self.log, self.lines = self.device.log, self.device.lines
        self.device.start()

    def _device(self) -> VirtualDevice:
        if self.device is None:
            raise RuntimeError("the virtual device is not started")
        return self.device

    def scan(self, line: bytes | str) -> None:
        self._device().scan(line)

    def hard_reset(self) -> None:
        device = self._device()
        device.kill()
        device.start()

    def stop(self) -> None:
        if self.device is not None:
            self.device.stop()


class SerialTarget(Target):
    kind = "serial"

    def __init__(self, port: str, *, scanner: str, reset: str = "rts", baud: int = 115200) -> None:
        try:
            import serial  # noqa: F401 - pyserial, the dependency of mpremote
        except ImportError:
            raise RuntimeError("pyserial is missing: pip install mpremote") from None
        if not scanner:
            raise RuntimeError("--target serial:PORT needs --scanner PORT: the USB-UART adapter wired to the "
                               "board's scan-engine UART")
        self.port, self.scanner_port, self.reset_how, self.baud = port, scanner, reset, baud
        self.log = LineLog()
        self.lines = self.log.lines
        self._console: Any = None
        self._scanner: Any = None
        self._backup = Path(tempfile.mkdtemp(prefix="hil-backup-")) / "config.json"
        self._reader: threading.Thread | None = None
        self._stopping = False

    def _mpremote(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        tool = shutil.which("mpremote")
        if tool is None:
            raise RuntimeError("mpremote is missing: pip install mpremote")
        done = subprocess.run([tool, "connect", self.port, *arguments], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"mpremote {' '.join(arguments)} on {self.port}: {done.stderr.strip()} (is the "
                               "port right, free, and the board running MicroPython?)")
        return done

    def start(self, config: dict[str, Any]) -> None:
        import serial

        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "config.json"
            path.write_text(json.dumps(config))
            self._mpremote("fs", "cp", ":config.json", str(self._backup))
            self._mpremote("fs", "cp", str(path), ":config.json")
        self._console = serial.Serial(self.port, self.baud, timeout=0.2)
        self._scanner = serial.Serial(self.scanner_port, int(config.get("uart", {}).get("baud", 9600)), timeout=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.hard_reset()

    def _read(self) -> None:
        pending = b""
        while not self._stopping:
            try:
                pending += self._console.read(256)
            except Exception:  # the port vanished during a reset; it comes back
                time.sleep(0.2)
                continue
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                self.log.add(raw.decode("utf-8", "replace").rstrip("\r"))

    def scan(self, line: bytes | str) -> None:
        data = line.encode() if isinstance(line, str) else line
        self._scanner.write(data + b"\r\n")
        self._scanner.flush()

    def hard_reset(self) -> None:
        if self.reset_how == "rts":
            self._console.dtr = False
            self._console.rts = True
            time.sleep(0.1)
            self._console.rts = False
        else:
            self._console.write(b"\x03\x03import machine; machine.reset()\r\n")

    def stop(self) -> None:
        self._stopping = True
        for handle in (self._console, self._scanner):
            if handle is not None:
                handle.close()
        if self._backup.exists():
            self._mpremote("fs", "cp", str(self._backup), ":config.json")
            self._mpremote("reset")


def make_target(spec: str, folder: Path, *, scanner: str = "", reset: str = "rts") -> Target:
    """A target from the --target option: "virtual", "pi-qemu", "rp2040" or "serial:/dev/ttyUSB0"."""
    if spec == "virtual":
        return VirtualTarget(folder)
    if spec == "pi-qemu":
        return VirtualTarget(folder, interpreter="micropython-aarch64")
    if spec == "rp2040":
        from hil_tests.model_target import ModelTarget  # the model's Node and PPP peer: only when asked for

        return ModelTarget(folder)
    if spec.startswith("serial:") and len(spec) > 7:
        port = spec[7:]
        if not Path(port).exists():
            raise RuntimeError(f"{port} does not exist: is the board plugged in? (ls /dev/ttyUSB* /dev/ttyACM*)")
        return SerialTarget(port, scanner=scanner, reset=reset)
    raise RuntimeError(f"--target must be virtual, pi-qemu, rp2040 or serial:PORT, got {spec!r}")
