"""The store on either backend: migrations from version 1, a newer schema refused, locks held per transaction,
and conflicts between instances retried as a whole."""

import sqlite3
import threading
import time

import pytest
from stores import fresh_location, on_postgres

from gateway import store as store_module
from gateway.store import SCHEMA, SCHEMA_VERSION, Conflict, StoreError, open_store, retrying


def _version_1(location):
    """A database as gateway version 1 left it, with one event."""
    event = ("INSERT INTO events (device, seq, received_ms, signed, boot, device_time_ms, clock, event_ms, terminal, "
             "institution, op, kind, code, pid, serial, lot, expiry, made, err, ticket, split_qty, list_code, verdict) "
             "VALUES ('d', 1, 1, ?, 1, 1, 1, 1, 'T', 'P', 1, 1, 'c', 'p', 's', '', '', '', 0, '', 0, '', 0)")
    statements = [part.strip() for part in SCHEMA.split(";") if part.strip()]
    if on_postgres():
        import psycopg

        from gateway.pgstore import in_postgres

        with psycopg.connect(location, autocommit=True) as connection:
            for statement in statements:
                connection.execute(in_postgres(statement))
            connection.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
            connection.execute("INSERT INTO schema_version VALUES (1)")
            connection.execute(event.replace("?", "%s"), (b"\x01",))
        return
    db = sqlite3.connect(location)
    for statement in statements:
        db.execute(statement)
    db.execute(event, (b"\x01",))
    db.execute("PRAGMA user_version = 1")
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
    from gateway import alerts

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
