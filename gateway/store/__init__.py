"""Durable storage: the transaction interface, the schema and its migrations, SQLite and PostgreSQL."""
