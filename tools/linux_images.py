"""The unix-port executables in firmware/images for Linux boards: which one a board takes, and how to run one here.

Architectures are named as Debian and Raspberry Pi OS name their userland: `aarch64` (arm64), `armhf` (32-bit
ARMv7, hard float) and `x86_64` (amd64). An executable of another architecture than this machine's runs under
qemu-user (Debian `qemu-user`: `qemu-aarch64`, `qemu-arm`); the executables are static, so qemu needs no sysroot.
"""

from __future__ import annotations

import platform
import shutil
import struct
from pathlib import Path

from tools.errors import ToolError
from tools.paths import FIRMWARE

__all__ = ["ARCHES", "ArchError", "arch_of_elf", "arch_of_machine", "command", "image", "runner"]

ARCHES = ("aarch64", "armhf", "x86_64")
IMAGES = FIRMWARE / "images"
_QEMU = {"aarch64": "qemu-aarch64", "armhf": "qemu-arm", "x86_64": "qemu-x86_64"}
_MACHINES = {"aarch64": "aarch64", "arm64": "aarch64", "armv7l": "armhf", "armv8l": "armhf", "x86_64": "x86_64",
             "amd64": "x86_64"}
"""`uname -m` -> architecture. armv8l is a 32-bit userland on a 64-bit ARM CPU."""
_ELF_MACHINES = {(2, 183): "aarch64", (1, 40): "armhf", (2, 62): "x86_64"}
"""(ELF class, e_machine) -> architecture."""


class ArchError(ToolError):
    """The board's architecture has no executable here, or could not be told; the message says what to do."""


def arch_of_machine(machine: str) -> str:
    """The architecture for a `uname -m` answer."""
    if machine in _MACHINES:
        return _MACHINES[machine]
    if machine.startswith("armv6"):
        raise ArchError(f"{machine} (Raspberry Pi 1 or Zero) is ARMv6: the armhf executable needs ARMv7 or later; "
                        "run the agent on CPython there (--python)")
    raise ArchError(f"no MicroPython executable for {machine!r}: give --arch ({', '.join(ARCHES)}) or use --python")


def arch_of_elf(path: Path) -> str:
    """The architecture of an ELF executable (a board's /bin/sh tells its userland's)."""
    try:
        with open(path, "rb") as file:
            header = file.read(20)
    except OSError as error:
        raise ArchError(f"cannot read {path} to tell the board's architecture ({error}): give --arch") from None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise ArchError(f"{path} is not an ELF executable: give --arch")
    order = "<" if header[5] == 1 else ">"
    key = (header[4], struct.unpack_from(order + "H", header, 18)[0])
    if key not in _ELF_MACHINES:
        raise ArchError(f"{path} is for ELF machine {key[1]}, which has no executable here: give --arch or use "
                        "--python")
    return _ELF_MACHINES[key]


def image(arch: str) -> Path:
    """The committed executable for `arch` (MicroPython v1.28.0, the agent frozen in)."""
    if arch not in ARCHES:
        raise ArchError(f"unknown architecture {arch!r}: one of {', '.join(ARCHES)}")
    return IMAGES / f"unix-{arch}-v1.28.0-release.elf"


def runner(arch: str) -> list[str]:
    """What runs an executable of `arch` on this machine: nothing (it runs itself), or qemu-user."""
    try:
        here = arch_of_machine(platform.machine())
    except ArchError:
        here = ""
    if arch == here:
        return []
    qemu = shutil.which(_QEMU[arch])
    if qemu is None:
        raise ArchError(f"{_QEMU[arch]} not found: apt-get install qemu-user (to run the {arch} executable here)")
    return [qemu]


def command(arch: str) -> list[str]:
    """How to run the committed executable for `arch` on this machine."""
    return [*runner(arch), str(image(arch))]
