"""Which database the gateway tests run on: SQLite files (default), or fresh databases on one throwaway
PostgreSQL cluster (`pytest --store postgresql`)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

_cluster = None
_names = itertools.count(1)


def use_postgres(cluster) -> None:
    global _cluster
    _cluster = cluster


def on_postgres() -> bool:
    return _cluster is not None


def fresh_database() -> str:
    """A new empty PostgreSQL database's URL, or "" on SQLite (the gateway's default file)."""
    if _cluster is None:
        return ""
    return _cluster.create_database(f"t{os.getpid()}_{next(_names)}")


def fresh_location(folder: Path) -> str:
    """Where a new store lives: a new PostgreSQL database, or a SQLite file in `folder`."""
    return fresh_database() or str(Path(folder) / "gateway.sqlite3")
