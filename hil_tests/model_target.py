"""The `rp2040` target: today's agent on the committed MicroPython image for a Pico with PPP, in the RP2040 model.

- image: firmware/images/RPI_PICO_PPP-v1.28.0-base.uf2 (upstream's Pico with lwIP and network.PPP);
- the agent: .mpy files from the matching mpy-cross, main.py and the test's config.json, in a littlefs image made
  at start; the config keeps the board's defaults (scanner on UART0 GP16/GP17, watchdog 8 s) and adds the PPP
  link on UART1 (GP4/GP5) and the feedback pins;
- network: the board's lwIP talks PPP over UART1 to slirp on this machine (harness/ppp_peer.py), which reaches the
  broker on 127.0.0.1; the device knows this machine as 10.0.2.2;
- scans go into UART0 at 9600 baud; feedback is read from the LED and buzzer GPIOs; the console carries the
  agent's `signal` lines;
- hard reset: the CPU is stopped where it is, the flash kept exactly, and a fresh model boots from it (a power
  cut); a watchdog reset does the same.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from harness.pico_model import IMAGES, GpioChange, PicoModel, littlefs_image
from harness.ppp_peer import HOST_ALIAS, SlirpPeer
from harness.virtual_device import LineLog
from hil_tests.targets import Target
from tools.paths import FIRMWARE, RP2040_ARCH, compile_firmware

IMAGE = IMAGES / "RPI_PICO_PPP-v1.28.0-base.uf2"
SCANNER_UART = 0  # the rp2 board default: UART0 on GP16/GP17
PPP = {"id": 1, "tx": 4, "rx": 5, "baud": 115200}
FEEDBACK_PINS = {"led_green": 13, "led_red": 14, "led_amber": 15, "buzzer": 22}


class ModelTarget(Target):
    kind = "rp2040"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log = LineLog()
        self.lines = self.log.lines
        self.gpio_changes: list[GpioChange] = []
        self._pico: PicoModel | None = None
        self._peer: SlirpPeer | None = None
        self._pending = b""
        self._boots = 0
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None
        self._stopping = False

    def start(self, config: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        settings = {**config, "broker_host": HOST_ALIAS, "ppp": PPP, "pins": FEEDBACK_PINS}
        settings.pop("uart", None)  # the board's default scanner UART
        compiled = compile_firmware(self.folder / "mpy", RP2040_ARCH)
        files = {str(path.relative_to(compiled)): path.read_bytes() for path in compiled.rglob("tcagent/**/*.mpy")}
        files["main.py"] = (FIRMWARE / "main.py").read_bytes()
        files["config.json"] = json.dumps(settings).encode()
        (self.folder / "littlefs.img").write_bytes(littlefs_image(files))
        self._boot(fs=self.folder / "littlefs.img")
        self._watch = threading.Thread(target=self._watch_watchdog, daemon=True)
        self._watch.start()

    def _boot(self, *, fs: Path | None = None, flash: Path | None = None) -> None:
        self._boots += 1
        pico = PicoModel(uf2=IMAGE if flash is None else None, fs=fs, flash=flash,
                         watch=sorted(FEEDBACK_PINS.values()))
        pico.on_console(self._console)
        self._peer = SlirpPeer(pico, PPP["id"], self.folder / f"slirp-{self._boots}")
        self._pico = pico

    def _console(self, data: bytes) -> None:
        self._pending += data
        while b"\n" in self._pending:
            raw, self._pending = self._pending.split(b"\n", 1)
            self.log.add(raw.decode("utf-8", "replace").rstrip("\r"))

    def _model(self) -> PicoModel:
        if self._pico is None:
            raise RuntimeError("the rp2040 target is not started")
        return self._pico

    def scan(self, line: bytes | str) -> None:
        data = line.encode() if isinstance(line, str) else line
        self._model().uart_write(SCANNER_UART, data + b"\r\n")

    def flashes(self, pin_name: str) -> int:
        """How often feedback pin `pin_name` (led_green, led_red, led_amber, buzzer) went high, over every boot."""
        pin = FEEDBACK_PINS[pin_name]
        changes = self.gpio_changes + (self._pico.gpio_changes if self._pico is not None else [])
        return sum(1 for change in changes if change.pin == pin and change.level == 1)

    def _power_cut(self) -> None:
        """Stop the CPU where it is, keep the flash, boot a fresh model from it."""
        with self._lock:
            pico = self._model()
            saved = self.folder / f"flash-{self._boots}.bin"
            pico.save_flash(saved)
            self.gpio_changes += pico.gpio_changes
            pico.stop()
            if self._peer is not None:
                self._peer.stop()
            self._pending = b""
            self._boot(flash=saved)

    def hard_reset(self) -> None:
        self._power_cut()

    def _watch_watchdog(self) -> None:
        while not self._stopping:
            pico = self._pico
            if pico is not None and pico.watchdog_ns is not None and not self._stopping:
                self.log.add(f"target: watchdog reset at {pico.watchdog_ns} ns")
                self._power_cut()
            threading.Event().wait(0.2)

    def stop(self) -> None:
        self._stopping = True
        if self._pico is not None:
            self._pico.stop()
        if self._peer is not None:
            self._peer.stop()
