"""The store on either backend: migrations from version 1, a newer schema refused, locks held per transaction,
and conflicts between instances retried as a whole."""

import sqlite3
import threading
import time

import pytest
from stores import fresh_location, on_postgres

from gateway.store import base as store_module
from gateway.store.base import Conflict, StoreError, retrying
from gateway.store.opening import open_store
from gateway.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION


def _version_1(location):
    """A database as gateway version 1 left it, with one event."""
    _at_version(location, 1)


def _at_version(location, version, *rows):
    """A database as the gateway of schema `version` left it: version 1's tables, the migrations up to `version`,
    one event and `rows` (SQL both engines run)."""
    event = ("INSERT INTO events (device, seq, received_ms, signed, boot, device_time_ms, clock, event_ms, terminal, "
             "institution, op, kind, code, pid, serial, lot, expiry, made, err, ticket, split_qty, list_code, verdict) "
             "VALUES ('d', 1, 1, ?, 1, 1, 1, 1, 'T', 'P', 1, 1, 'c', 'p', 's', '', '', '', 0, '', 0, '', 0)")
    statements = [part.strip() for part in SCHEMA.split(";") if part.strip()]
    statements += [statement for step in range(2, version + 1) for statement in MIGRATIONS[step]]
    if on_postgres():
        import psycopg

        from gateway.store.postgres import in_postgres

        with psycopg.connect(location, autocommit=True) as connection:
            for statement in statements:
                connection.execute(in_postgres(statement))
            connection.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
            connection.execute("INSERT INTO schema_version VALUES (%s)", (version,))
            connection.execute(event.replace("?", "%s"), (b"\x01",))
            for row in rows:
                connection.execute(in_postgres(row))
        return
    db = sqlite3.connect(location)
    for statement in statements:
        db.execute(statement)
    db.execute(event, (b"\x01",))
    for row in rows:
        db.execute(row)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def test_a_version_1_database_is_migrated_in_place(tmp_path):
    location = fresh_location(tmp_path)
    _version_1(location)
    store = open_store(location)
    try:
        assert store.query("SELECT device, seq, instance FROM events") == [("d", 1, "")]
    finally:
        store.close()
    again = open_store(location)  # an up-to-date database is left as it is
    again.close()


def test_the_migrations_follow_one_another_and_leave_every_table(tmp_path):
    """Version 5 (sign-ins, withdrawals, adjustments, the swap counter), 6 (users, device commands, who changed
    an alert) and 7 (a line stood for, the scan standing for it) land in order on a version 1 database."""
    assert sorted(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1)) and SCHEMA_VERSION == 7
    location = fresh_location(tmp_path)
    _version_1(location)
    store = open_store(location)
    try:
        for table, column in (("rate_hours", "swapped_scans"), ("sign_ins", "sign_no"), ("withdrawals", "operator"),
                              ("adjustments", "digest"), ("users", "token_hash"), ("commands", "answer_signed"),
                              ("alerts", "changed_by"), ("ticket_lines", "stood"), ("events", "stands_for")):
            assert store.query(f"SELECT count({column}) FROM {table}") == [(0,)], table
    finally:
        store.close()


def test_a_version_5_database_gets_users_and_commands_and_keeps_its_sign_ins(tmp_path):
    """A gateway that ran schema 5 (sign-ins and withdrawals, no users yet) is upgraded by migration 6 alone."""
    location = fresh_location(tmp_path)
    _at_version(location, 5, "INSERT INTO sign_ins (institution, sign_no, signed_ms) VALUES ('P-A', 'S-1', 5)",
                "INSERT INTO alerts (type, severity, state, institution, terminal, device, subject, detail, count, "
                "first_ms, last_ms, changed_ms, note, events, tickets) VALUES ('repeat_sale', 'high', 'open', 'P-A', "
                "'T', 'd', 'c', 'x', 1, 1, 1, 1, '', '[]', '[]')")
    store = open_store(location)
    try:
        assert store.query("SELECT institution, sign_no FROM sign_ins") == [("P-A", "S-1")]
        assert store.query("SELECT state, changed_by FROM alerts") == [("open", "")]
        assert store.query("SELECT count(*) FROM users") == [(0,)]
        assert store.query("SELECT count(*) FROM commands") == [(0,)]
    finally:
        store.close()
    again = open_store(location)  # now at the newest: left as it is
    again.close()


def test_a_version_6_database_gets_stood_lines_and_keeps_its_users(tmp_path):
    """A gateway that ran schema 6 (users and commands, no stood lines yet) is upgraded by migration 7 alone: its
    events stand for no line and its lines were stood for by nothing."""
    location = fresh_location(tmp_path)
    _at_version(location, 6, "INSERT INTO users (name, role, token_hash, created_ms) VALUES ('ann', 'admin', 'h', 1)",
                "INSERT INTO tickets (id, terminal, institution, number, time_ms, received_ms, digest, platform) "
                "VALUES (1, 'T', 'P', 'N-1', 1, 1, 'x', '')",
                "INSERT INTO ticket_lines (ticket_id, line_no, list_code, quantity, split, required, needed, due_ms) "
                "VALUES (1, 1, 'L', 1, 0, 1, 1, 1)")
    store = open_store(location)
    try:
        assert store.query("SELECT name, role FROM users") == [("ann", "admin")]
        assert store.query("SELECT seq, stands_for FROM events") == [(1, None)]
        assert store.query("SELECT line_no, stood FROM ticket_lines") == [(1, 0)]
    finally:
        store.close()


def test_a_newer_schema_is_refused(tmp_path):
    location = fresh_location(tmp_path)
    open_store(location).close()
    if on_postgres():
        import psycopg

        with psycopg.connect(location, autocommit=True) as connection:
            connection.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION + 1,))
    else:
        db = sqlite3.connect(location)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
    with pytest.raises(StoreError, match="newer than this gateway"):
        open_store(location)


def test_retrying_runs_the_work_again_after_a_conflict_and_gives_up_in_the_end(monkeypatch):
    monkeypatch.setattr(store_module.time, "sleep", lambda seconds: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise Conflict("deadlock")
        return "done"

    assert retrying(flaky) == "done" and len(calls) == 3

    def hopeless():
        raise Conflict("deadlock")

    with pytest.raises(Conflict):
        retrying(hopeless)


def test_a_lock_keeps_a_second_instance_waiting_until_the_first_commits(tmp_path):
    location = fresh_location(tmp_path)
    first, second = open_store(location), open_store(location)
    order = []
    try:
        with first.transaction() as tx:
            tx.lock(["code:1"])

            def other():
                with second.transaction() as other_tx:
                    other_tx.lock(["code:1", "code:2"])
                    order.append("second")

            thread = threading.Thread(target=other)
            thread.start()
            time.sleep(0.3)
            order.append("first")
        thread.join(10)
        assert order == ["first", "second"]
    finally:
        first.close()
        second.close()


@pytest.mark.skipif("not on_postgres()", reason="SQLite has one writer: there is no second instance to race")
def test_racing_instances_raise_one_live_alert_and_the_loser_gets_a_conflict(tmp_path):
    from gateway.domain import alerts

    location = fresh_location(tmp_path)
    first, second = open_store(location), open_store(location)
    failures = []

    def other():
        try:
            with second.transaction() as other_tx:
                alerts.raise_alert(other_tx, "repeat_sale", subject="c1", detail="d", now_ms=2)
        except Conflict as error:
            failures.append(str(error))

    try:
        with first.transaction() as tx:
            alerts.raise_alert(tx, "repeat_sale", subject="c1", detail="d", now_ms=1)
            thread = threading.Thread(target=other)
            thread.start()
            time.sleep(0.3)  # the second waits on the unique index until the first commits
        thread.join(10)
        assert len(failures) == 1 and "UniqueViolation" in failures[0]
        retrying(other)  # run again, it sees the live alert and folds into it
        assert first.query("SELECT count(*), max(count) FROM alerts") == [(1, 2)]
    finally:
        first.close()
        second.close()
