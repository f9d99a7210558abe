"""The store a location names: PostgreSQL for a postgresql:// URL, otherwise a SQLite file."""

from __future__ import annotations

from gateway.store.base import Store
from gateway.store.sqlite import SQLiteStore

__all__ = ["open_store"]


def open_store(location: str, *, durable: bool = True) -> Store:
    """The store at `location`: a postgresql:// URL, otherwise the path of a SQLite file."""
    if location.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore  # psycopg only for a PostgreSQL store

        return PostgresStore(location)
    return SQLiteStore(location, durable=durable)
