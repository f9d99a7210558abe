"""trace-flash pico: the release image for the board onto a Raspberry Pi Pico or Pico W, then its config.json.

The release UF2 (firmware/images/<BOARD>-v1.28.0-release.uf2: MicroPython with the agent frozen in) is copied
onto the board's BOOTSEL drive (RPI-RP2) when one is mounted, or named for the technician to drag there. Once the
board has restarted into MicroPython and its serial port is there, config.json (and ca.crt beside it, if any)
go on with mpremote, in one connection (the running agent's watchdog gives 8 s once interrupted), and the board
is reset. An image without the agent frozen in (`--firmware`, e.g. plain MicroPython) gets the agent compiled
with mpy-cross as well.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tools import flash
from tools.paths import FIRMWARE, RP2040_ARCH

__all__ = ["BOARDS", "bootsel_drives", "flash_pico", "has_agent", "release_image", "uf2_payload"]

BOARDS = ("RPI_PICO", "RPI_PICO_W")
IMAGE_VERSION = "v1.28.0"
PICO_USB = (0x2E8A, 0x0005)
"""A Pico running MicroPython, on USB."""
_UF2_BLOCK = 512


def release_image(board: str) -> Path:
    """The committed release UF2 for `board` (RPI_PICO or RPI_PICO_W)."""
    if board not in BOARDS:
        raise flash.FlashError(f"--board: expected one of {', '.join(BOARDS)}, got {board!r}")
    return FIRMWARE / "images" / f"{board}-{IMAGE_VERSION}-release.uf2"


def uf2_payload(image: Path) -> bytes:
    """The bytes a UF2 image writes, block after block (what a text search of the image must look in)."""
    data = image.read_bytes()
    return b"".join(data[at + 32:at + 32 + int.from_bytes(data[at + 16:at + 20], "little")]
                    for at in range(0, len(data) - _UF2_BLOCK + 1, _UF2_BLOCK))


def has_agent(image: Path) -> bool:
    """Whether a UF2 image has the agent frozen in (its payload names tcagent/agent.py, as build.sh checks)."""
    return b"tcagent/agent.py" in uf2_payload(image)


def bootsel_drives(mounts: Path = Path("/proc/mounts")) -> list[Path]:
    """Mounted RPI-RP2 drives: mount points whose INFO_UF2.TXT names that board (a Pico held in BOOTSEL)."""
    found = []
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        point = Path(fields[1].replace("\\040", " "))
        try:
            info = (point / "INFO_UF2.TXT").read_text(errors="replace")
        except OSError:
            continue
        if "RPI-RP2" in info:
            found.append(point)
    return found


def _drive(mount: str | None) -> Path | None:
    if mount:
        drive = Path(mount)
        if not (drive / "INFO_UF2.TXT").exists():
            raise flash.FlashError(f"{drive} is not the Pico's BOOTSEL drive: hold BOOTSEL while plugging the board "
                                   "in, and give the drive's mount point (--mount /media/$USER/RPI-RP2)")
        return drive
    drives = bootsel_drives()
    if len(drives) > 1:
        raise flash.FlashError(f"{len(drives)} RPI-RP2 drives mounted ({', '.join(map(str, drives))}): choose one "
                               "with --mount")
    return drives[0] if drives else None


def _copy_image(image: Path, drive: Path) -> None:
    """Write the image onto the drive and make sure it left the page cache: the Pico reboots once it has it all."""
    with image.open("rb") as source, (drive / image.name).open("wb") as target:
        target.write(source.read())
        target.flush()
        os.fsync(target.fileno())


def _wait_for_port(port: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if (Path(port).exists() if port else
                any(found == flash.BOARDS[PICO_USB] for _, found in flash.boards_attached())):
            return
        time.sleep(0.5)
    raise flash.FlashError(f"no Pico's serial port appeared within {wait_s:.0f} s: did the image reach the board "
                           "(it restarts by itself once the copy is done)? Run again with --skip-firmware once it "
                           "shows up (ls /dev/ttyACM*)")


def flash_pico(options: argparse.Namespace) -> None:
    values = flash.check_config(options.config)
    board = options.pico_board or ("RPI_PICO_W" if values.get("wifi_ssid") else "RPI_PICO")
    image = Path(options.firmware) if options.firmware else release_image(board)
    agent_frozen = True
    if not options.skip_firmware:
        if image.suffix != ".uf2" or not image.is_file():
            raise flash.FlashError(f"{image}: not a .uf2 file (--firmware takes a MicroPython image for the Pico)")
        agent_frozen = has_agent(image)
        drive = _drive(options.mount)
        if drive is not None:
            _copy_image(image, drive)
            print(f"-- {image.name} copied to {drive}: the Pico restarts into it", flush=True)
        else:
            print(f"-- no RPI-RP2 drive is mounted: hold BOOTSEL while plugging the Pico in, then drag\n   {image}\n"
                  f"   onto the RPI-RP2 drive; waiting up to {options.wait_s:.0f} s for the board's serial port",
                  flush=True)
        _wait_for_port(options.port, options.wait_s)
    port = flash.checked_port(options.port)
    if not agent_frozen:
        flash.copy_agent(port, options.config, RP2040_ARCH)
        return
    flash.probe_repl(port)
    extra = ["+", "fs", "cp", str(options.config.parent / "ca.crt"), ":ca.crt"] \
        if (options.config.parent / "ca.crt").exists() else []
    flash.mpremote(port, "fs", "cp", str(options.config), ":config.json", *extra, "+", "reset")
