"""One owner per table: only the module that owns a table has SQL naming it.

A module that needs another's rows calls a function of the owner (a read-only view where it only reads), so a
table's columns, indexes and invariants are learnt in one file. The SQL is found by reading the string literals of
every gateway module (`ast`), and a statement is charged to the file *stem* that holds it, so the rule survives
modules moving into sub-packages (a module renamed is renamed here too). Schema work names any table: the
SCHEMA, the MIGRATIONS and any CREATE, ALTER or DROP statement.
"""

import ast
import re
from pathlib import Path

from gateway.store.schema import MIGRATIONS, SCHEMA

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"

OWNERS = {
    "devices": "devices",
    "device_state": "devices",
    "events": "scans",
    "quarantine": "quarantine",
    "quarantine_dropped": "quarantine",
    "products": "catalog",
    "tickets": "tickets",
    "ticket_lines": "tickets",
    "codes": "ledger",
    "code_inbound": "ledger",
    "stock": "ledger",
    "rate_hours": "rates",
    "alerts": "alerts",
    "outbox": "outbox",
    "requests": "outbox",
    "sign_ins": "sign_in",
    "withdrawals": "withdrawals",
    "adjustments": "adjustments",
    "users": "users",
    "commands": "control",
    "schema_version": "postgres",
}
"""Table -> the module (file stem) that owns it; docs/table-owners.md shows the same table."""

_DEVICE_REGISTRY = ("the Store interface registers devices and caches their keys (add_device, device_key); the "
                    "store sits below devices and cannot call it")

UNMOVED: dict[tuple[str, str], str] = {
    ("base", "device_state"): _DEVICE_REGISTRY,
    ("base", "devices"): _DEVICE_REGISTRY,
}
"""(module, table) -> why its SQL on the table still lives outside the owner. It may only shrink: an entry no
longer needed fails `test_no_exception_outlives_its_statement`."""

_PLANNER_JOINS = ("the outbox planner's joins of its rows with their events (and ticket lines): split into calls "
                  "to the owners they would cost a round trip per row on PostgreSQL")
_TAKE_BACK_JOIN = ("taken_by_later_tickets finds the scans of a checkout that a later ticket's lines took through "
                   "those tickets, in one indexed query (matching gives them back)")
JOINS_KEPT: dict[tuple[str, str], str] = {
    ("outbox", "events"): _PLANNER_JOINS,
    ("outbox", "ticket_lines"): _PLANNER_JOINS,
    ("outbox", "tickets"): _PLANNER_JOINS,
    ("scans", "ticket_lines"): _TAKE_BACK_JOIN,
    ("scans", "tickets"): _TAKE_BACK_JOIN,
}
"""(module, table) -> why the module may read the table in a JOIN with a table of its own (reading only; any
other statement of the module on the table still fails). It may only shrink too."""

_NAMED = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+([a-z_]+)")
_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP)\b")


def _literals(tree: ast.AST):
    """(line, text) of every string literal; an f-string's fields read as a blank placeholder."""
    parts = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(tree):
        if id(node) in parts:
            continue
        if isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(part.value if isinstance(part, ast.Constant) else " ? " for part in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _migration_statements() -> set[str]:
    return {statement for statements in MIGRATIONS.values() for statement in statements}


def _statements_naming_tables() -> list[tuple[str, str, int, str]]:
    """(module stem, table, line, statement) for every literal naming a known table after FROM, JOIN, INTO or
    UPDATE (DELETE FROM included)."""
    migrations = _migration_statements()
    found = []
    for path in sorted(GATEWAY.rglob("*.py")):
        stem = path.stem
        for line, text in _literals(ast.parse(path.read_text(encoding="utf-8"))):
            if text == SCHEMA or text in migrations or _DDL.match(text):
                continue
            for table in {match.group(1) for match in _NAMED.finditer(text)} & set(OWNERS):
                found.append((stem, table, line, text))
    return found


def _foreign() -> tuple[dict[tuple[str, str], list[str]], set[tuple[str, str]]]:
    """(module, table) -> the places of its statements on a table it does not own, but for the joins `JOINS_KEPT`
    allows; and the pairs those joins were found for."""
    foreign: dict[tuple[str, str], list[str]] = {}
    joined: set[tuple[str, str]] = set()
    for stem, table, line, text in _statements_naming_tables():
        if OWNERS[table] == stem:
            continue
        if (stem, table) in JOINS_KEPT and _is_read_join(stem, text):
            joined.add((stem, table))
            continue
        foreign.setdefault((stem, table), []).append(f"{stem}.py:{line}: {' '.join(text.split())[:100]}")
    return foreign, joined


def _is_read_join(stem: str, text: str) -> bool:
    """A SELECT joining a table of `stem`'s own with others, writing nothing."""
    own = {match.group(1) for match in _NAMED.finditer(text)} & {table for table, owner in OWNERS.items()
                                                                 if owner == stem}
    return " JOIN " in text and bool(own) and not re.search(r"\b(INSERT|UPDATE|DELETE)\b", text)


def test_every_table_of_the_schema_has_an_owner():
    created = set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)", SCHEMA))
    created |= {name for statement in _migration_statements()
                for name in re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)", statement)}
    assert created | {"schema_version"} == set(OWNERS)
    assert {path.stem for path in GATEWAY.rglob("*.py")} >= set(OWNERS.values())


def test_the_documented_table_is_this_one():
    """docs/table-owners.md shows `OWNERS` to people; the two stay equal."""
    text = (GATEWAY.parent / "docs" / "table-owners.md").read_text(encoding="utf-8")
    assert dict(re.findall(r"^\| `([a-z_]+)` \| `([a-z_]+)` \|", text, re.MULTILINE)) == OWNERS


def test_the_scan_finds_every_table_and_its_owner():
    """The scan itself: each table is named somewhere, and by its owner (a broken pattern would find nothing and
    pass)."""
    named = {(stem, table) for stem, table, _, _ in _statements_naming_tables()}
    assert {(owner, table) for table, owner in OWNERS.items()} <= named


def test_only_the_owner_has_sql_naming_its_table():
    foreign = {pair: places for pair, places in _foreign()[0].items() if pair not in UNMOVED}
    assert not foreign, "SQL outside the table's owner (call a function of the owner instead):\n" + "\n".join(
        f"{table} (owner {OWNERS[table]}) in {stem}: " + "; ".join(places)
        for (stem, table), places in sorted(foreign.items()))


def test_no_exception_outlives_its_statement():
    foreign, joined = _foreign()
    outlived = (set(UNMOVED) - set(foreign)) | (set(JOINS_KEPT) - joined)
    assert not outlived, f"no longer needed, remove from UNMOVED or JOINS_KEPT: {sorted(outlived)}"
