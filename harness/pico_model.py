"""A Raspberry Pi Pico in the instruction-level RP2040 model (rp2040js), driven from Python.

The model runs a real MicroPython UF2 from `firmware/images/`; the agent and its files go in a littlefs image
made here at MicroPython's filesystem offset. The firmware's flash programs and erases reach a model of the
flash chip (harness/rp2040/flash-chip.mjs), so files written on the device stay, can be saved with the whole flash
at any instant, and a fresh model can boot from that (a power cut: `cut_after` or `cut_at`, `save_flash`, `flash=`).
The Node side is `harness/rp2040/model.mjs` (its package is installed by `npm ci` in `harness/rp2040/`, which
`tools/test.sh` runs).

    with PicoModel(uf2=IMAGES / "RPI_PICO-v1.28.0-base.uf2", fs=littlefs_image(files)) as pico:
        pico.wait_connected()
        out = pico.exec_raw("print(1 + 1)")

Limits: rp2040js counts instruction cycles at 125 MHz and does not model the XIP cache, so times read on the
device (`time.ticks_us`) are of the model, not of a board (a board can be slower where code misses the cache).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "harness" / "rp2040"
IMAGES = ROOT / "firmware" / "images"

__all__ = [
    "FS_BLOCK_COUNT",
    "FS_BLOCK_SIZE",
    "FS_OFFSET",
    "IMAGES",
    "ModelError",
    "TYPICAL_ERASE_US",
    "TYPICAL_PROGRAM_US",
    "PicoModel",
    "RemoteError",
    "Cut",
    "FlashStats",
    "GpioChange",
    "littlefs_image",
    "model_available",
]

FS_OFFSET = 0xA0000
"""Where MicroPython's filesystem starts in the RPI_PICO's 2 MB flash."""
FS_BLOCK_SIZE = 4096
TYPICAL_PROGRAM_US = 400
"""The Pico's flash chip (W25Q16JV) programs a page in 0.4 ms (datasheet tPP, typical; at most 3 ms)."""
TYPICAL_ERASE_US = 45_000
"""and erases a 4 KB sector in 45 ms (tSE, typical; at most 400 ms), with the RP2040's interrupts off meanwhile."""
FS_BLOCK_COUNT = 352
FS_PROG_SIZE = 256  # rp2's _boot.py mounts VfsLfs2(bdev, progsize=256)
FS_READ_SIZE = 32  # MicroPython's VfsLfs2 default
FS_LOOKAHEAD = 32


class ModelError(Exception):
    """The model did not start, stopped, or did not answer in time."""


class RemoteError(ModelError):
    """Code run on the device raised; `traceback` is what MicroPython printed."""

    def __init__(self, traceback: str) -> None:
        super().__init__(f"the device raised:\n{traceback}")
        self.traceback = traceback


@dataclass(frozen=True)
class FlashStats:
    """What the firmware did to the flash chip since the model started."""

    erases: int
    """4 KB sectors erased (a 64 KB block erase counts 16)."""
    programs: int
    """Page-program commands."""
    programmed: int
    """Bytes programmed."""


@dataclass(frozen=True)
class Cut:
    """Where the CPU was stopped by `cut_after` or `cut_at`."""

    operation: str
    """"program" or "erase": the flash operation the cut was counted from (for `cut_after` it had just ended,
    for `cut_at` it had started); "time" for a `cut_at` counted from the moment it was asked."""
    address: int
    """Its flash offset."""
    length: int
    """Bytes programmed or erased."""
    t_ns: int
    """Emulated time of the cut."""
    during: Mapping[str, object] | None = None
    """The flash operation under way at the cut and left partly done: kind ("program" or "erase"), address,
    length, progress (0-1, the share of its time that had passed); None when the chip was idle."""


@dataclass(frozen=True)
class GpioChange:
    """A watched GPIO changed level."""

    pin: int
    """GPIO number."""
    level: int
    """0 or 1, as the pin drives it (an input reads 0)."""
    t_ns: int
    """Emulated time of the change, in ns since the model started."""


def model_available() -> str | None:
    """Why the model cannot run here (no node, or `npm ci` not run in harness/rp2040), or None."""
    if shutil.which("node") is None:
        return "node is not installed (Debian: apt-get install nodejs npm)"
    if not (MODEL_DIR / "node_modules" / "rp2040js" / "package.json").exists():
        return f"rp2040js is not installed: run `npm ci` in {MODEL_DIR}"
    return None


def littlefs_image(files: Mapping[str, bytes]) -> bytes:
    """A littlefs2 image of the RPI_PICO's filesystem (352 blocks of 4 KB) holding `files` (path -> bytes).

    Folders are made as needed; paths are relative to the filesystem's root ("tcagent/codec/cbor.mpy").
    """
    from littlefs import LittleFS  # dev extra littlefs-python; imported here so the module loads without it

    fs = LittleFS(block_size=FS_BLOCK_SIZE, block_count=FS_BLOCK_COUNT, prog_size=FS_PROG_SIZE,
                  read_size=FS_READ_SIZE, lookahead_size=FS_LOOKAHEAD)
    for path, data in sorted(files.items()):
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            try:
                fs.mkdir(folder)
            except FileExistsError:
                pass
        with fs.open("/".join(parts), "wb") as handle:
            handle.write(data)
    return bytes(fs.context.buffer)


class PicoModel:
    """One RP2040 running in rp2040js as a child process; see the module's docstring.

    Keyword-only: `uf2` the image to flash; `fs` a littlefs image (bytes or a file) for offset 0xA0000;
    `flash` a whole flash image saved by `save_flash` (loaded first: a power cut keeps the flash as it was);
    `watch` the GPIOs whose changes are recorded in `gpio_changes`; `program_us`, `erase_us` how long the flash
    chip is busy with a page program and a sector erase (None: no time at all; TYPICAL_PROGRAM_US and
    TYPICAL_ERASE_US are the W25Q16JV's, which a power cut needs to land inside an operation).
    """

    def __init__(self, *, uf2: Path | None = None, fs: bytes | Path | None = None, flash: Path | None = None,
                 watch: Iterable[int] = (), workdir: Path | None = None, program_us: float | None = None,
                 erase_us: float | None = None) -> None:
        reason = model_available()
        if reason is not None:
            raise ModelError(reason)
        self._cdc = bytearray()
        self._uart: dict[int, bytearray] = {0: bytearray(), 1: bytearray()}
        self._uart_sinks: dict[int, Callable[[bytes], None]] = {}
        self._cdc_sink: Callable[[bytes], None] | None = None
        self._send_lock = threading.Lock()  # uart_write may come from a relay thread (harness/ppp_peer.py)
        self.gpio_changes: list[GpioChange] = []
        self.connected_ns: int | None = None
        self.watchdog_ns: int | None = None
        self.stopped_ns: int | None = None
        self._time_ns: int | None = None
        self.bauds: list[int] = []
        """Each UART's baud rate as of the last `now_ns` (0 before the firmware set it)."""
        self._saved: set[str] = set()
        self._flash_stats: FlashStats | None = None
        self.cut: Cut | None = None
        self.lost: list[Mapping[str, int]] = []
        """Bytes given to a pin that no UART received there (`rx_pin`): pin, bytes, the pin's function."""
        self._stderr = bytearray()
        self._changed = threading.Condition()
        args = ["node", str(MODEL_DIR / "model.mjs")]
        if uf2 is not None:
            args += ["--uf2", str(uf2)]
        if isinstance(fs, bytes):
            if workdir is None:
                raise ValueError("a littlefs image given as bytes needs a workdir to write it to")
            fs_file = workdir / "littlefs.img"
            fs_file.write_bytes(fs)
            fs = fs_file
        if fs is not None:
            args += ["--fs", str(fs)]
        if flash is not None:
            args += ["--flash", str(flash)]
        if program_us is not None:
            args += ["--program-us", str(program_us)]
        if erase_us is not None:
            args += ["--erase-us", str(erase_us)]
        pins = ",".join(str(pin) for pin in watch)
        if pins:
            args += ["--watch", pins]
        self._process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
        self._readers = [threading.Thread(target=self._read_events, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    # the child's output

    def _read_events(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            message = json.loads(line)
            with self._changed:
                if "cdc" in message and self._cdc_sink is not None:
                    self._cdc_sink(base64.b64decode(message["cdc"]))
                elif "cdc" in message:
                    self._cdc += base64.b64decode(message["cdc"])
                elif "uart" in message and message["uart"] in self._uart_sinks:
                    self._uart_sinks[message["uart"]](base64.b64decode(message["data"]))
                elif "uart" in message:
                    self._uart[message["uart"]] += base64.b64decode(message["data"])
                elif "gpio" in message:
                    self.gpio_changes.append(GpioChange(message["gpio"], message["level"], message["t_ns"]))
                elif "connected" in message:
                    self.connected_ns = message["connected"]
                elif "watchdog" in message:
                    self.watchdog_ns = message["watchdog"]
                elif "saved" in message:
                    self._saved.add(message["saved"])
                elif "flash_stats" in message:
                    self._flash_stats = FlashStats(**message["flash_stats"])
                elif "cut" in message:
                    self.cut = Cut(**message["cut"])
                elif "time" in message:
                    self._time_ns = message["time"]
                    self.bauds = message["bauds"]
                elif "lost" in message:
                    self.lost.append(message["lost"])
                elif "stopped" in message:
                    self.stopped_ns = message["stopped"]
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        stream = self._process.stderr
        assert stream is not None
        for chunk in iter(lambda: os.read(stream.fileno(), 4096), b""):
            with self._changed:
                self._stderr += chunk

    def _send(self, message: Mapping[str, object]) -> None:
        if self._process.stdin is None or self._process.poll() is not None:
            raise ModelError(f"the model has exited: {self.stderr()}")
        with self._send_lock:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()

    def wait_until(self, ready: str, check: Callable[[], bool], timeout: float) -> None:
        """Wait until `check()` holds; `ready` names what was awaited, for the error."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not check():
                if self._process.poll() is not None and not self._readers[0].is_alive():
                    raise ModelError(f"the model exited while waiting for {ready}: {self.stderr()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ModelError(f"no {ready} after {timeout} s; console so far: {self._cdc[-400:]!r}")
                self._changed.wait(min(left, 0.5))

    def wait_watchdog(self, timeout: float = 60) -> int:
        """Wait for the watchdog to fire (the model then stops the CPU); its emulated time in ns."""
        self.wait_until("watchdog reset", lambda: self.watchdog_ns is not None, timeout)
        assert self.watchdog_ns is not None
        return self.watchdog_ns

    def stderr(self) -> str:
        """What the Node process wrote to its standard error."""
        return self._stderr.decode(errors="replace")

    # the console

    def wait_connected(self, timeout: float = 60) -> None:
        """Wait for the device's USB CDC console."""
        self.wait_until("USB CDC console", lambda: self.connected_ns is not None, timeout)

    def write(self, data: bytes) -> None:
        """Send bytes to the console (the REPL)."""
        self._send({"cdc": base64.b64encode(data).decode()})

    def console(self) -> bytes:
        """Everything the console printed so far that no read took."""
        with self._changed:
            return bytes(self._cdc)

    def take_console(self) -> bytes:
        """Everything the console printed that no read took, taken now."""
        with self._changed:
            data = bytes(self._cdc)
            self._cdc.clear()
            return data

    def read_until(self, marker: bytes, timeout: float = 60) -> bytes:
        """The console's output up to and including `marker` (the rest stays for the next read)."""
        self.wait_until(repr(marker), lambda: marker in self._cdc, timeout)
        with self._changed:
            end = self._cdc.index(marker) + len(marker)
            taken = bytes(self._cdc[:end])
            del self._cdc[:end]
            return taken

    def enter_raw_repl(self, timeout: float = 60) -> None:
        """Interrupt whatever runs and enter MicroPython's raw REPL (Ctrl-C, Ctrl-A)."""
        self.write(b"\r\x03\x03")
        time.sleep(0.05)
        with self._changed:
            self._cdc.clear()
        self.write(b"\x01")
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", timeout)

    def soft_reset(self, timeout: float = 60) -> None:
        """Soft-reset MicroPython from the raw REPL (a fresh heap and no imported modules) and stay in it."""
        self.write(b"\x04")
        self.read_until(b"soft reboot\r\n", timeout)
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", timeout)

    def exec_raw(self, code: str, timeout: float = 120) -> str:
        """Run `code` in the raw REPL (entered before) and return what it printed; raise RemoteError if it raised."""
        self.write(code.encode() + b"\x04")
        self.read_until(b"OK", timeout)
        out = self.read_until(b"\x04", timeout)[:-1]
        error = self.read_until(b"\x04", timeout)[:-1]
        self.read_until(b">", timeout)
        if error:
            raise RemoteError(error.decode(errors="replace"))
        return out.decode(errors="replace")

    # UART, GPIO, flash

    def uart_write(self, port: int, data: bytes) -> None:
        """Bytes into UART `port`'s receiver (what a scan engine wired to its RX pin sends)."""
        self._send({"uart": port, "data": base64.b64encode(data).decode()})

    def uart_read(self, port: int) -> bytes:
        """What UART `port` transmitted since the last call."""
        with self._changed:
            data = bytes(self._uart[port])
            self._uart[port].clear()
            return data

    def rx_pin(self, pin: int, data: bytes) -> None:
        """Bytes on GPIO `pin`, as a scan engine whose TX is wired there sends them: they reach the UART whose RX
        the pin is in the function the firmware set (else they are lost and listed in `lost`)."""
        self._send({"rx_pin": pin, "data": base64.b64encode(data).decode()})

    def level(self, pin: int, default: int = 0) -> int:
        """The last level a watched `pin` was seen at (`default` before any change)."""
        with self._changed:
            for change in reversed(self.gpio_changes):
                if change.pin == pin:
                    return change.level
        return default

    def on_console(self, sink: Callable[[bytes], None]) -> None:
        """Hand what the console prints to `sink` (called on the reader thread); read_until sees nothing after."""
        self._cdc_sink = sink

    def on_uart(self, port: int, sink: Callable[[bytes], None]) -> None:
        """Hand what UART `port` transmits to `sink` (called on the reader thread) instead of keeping it."""
        self._uart_sinks[port] = sink

    def set_gpio(self, pin: int, level: int) -> None:
        """Drive input `pin` low (0) or high (1)."""
        self._send({"gpio": pin, "level": level})

    def save_flash(self, path: Path, timeout: float = 30) -> None:
        """Write the whole 2 MB flash, as it is this instant, to `path`."""
        self._send({"save_flash": str(path)})
        self.wait_until(f"flash saved to {path}", lambda: str(path) in self._saved, timeout)

    def now_ns(self, timeout: float = 30) -> int:
        """The model's emulated time, in ns since it started."""
        with self._changed:
            self._time_ns = None
        self._send({"time": True})
        self.wait_until("the model's time", lambda: self._time_ns is not None, timeout)
        assert self._time_ns is not None
        return self._time_ns

    def flash_stats(self, timeout: float = 30) -> FlashStats:
        """Erases and programs of the flash chip since the model started."""
        with self._changed:
            self._flash_stats = None
        self._send({"flash_stats": True})
        self.wait_until("flash statistics", lambda: self._flash_stats is not None, timeout)
        assert self._flash_stats is not None
        return self._flash_stats

    def cut_after(self, operations: int) -> None:
        """Stop the CPU right after the `operations`-th program or erase from now; `cut` then says where.

        The model stays up, so `save_flash` can keep the flash as the cut left it for a fresh model.
        """
        with self._changed:
            self.cut = None
        self._send({"cut_after": operations})

    def cut_at(self, *, op: int = 0, ns: int = 0, seed: int = 1) -> None:
        """A power cut `ns` of emulated time after the `op`-th flash program or erase from now has started (op 0:
        `ns` from now), at whatever instruction runs then; an operation under way is left partly done, `seed`
        choosing which of its bits changed (see harness/rp2040/flash-chip.mjs). `cut` then says where."""
        with self._changed:
            self.cut = None
        self._send({"cut_at": {"op": op, "ns": ns, "seed": seed}})

    def wait_cut(self, timeout: float = 60) -> Cut:
        """Wait for the cut `cut_after` or `cut_at` asked for."""
        self.wait_until("power cut", lambda: self.cut is not None, timeout)
        assert self.cut is not None
        return self.cut

    def stop(self, timeout: float = 10) -> None:
        """Stop the CPU wherever it is and end the model."""
        if self._process.poll() is None:
            try:
                self._send({"stop": True})
                self._process.wait(timeout)
            except (ModelError, OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for reader in self._readers:
            reader.join(timeout)

    def __enter__(self) -> PicoModel:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
