"""The tables of the gateway and the migrations from each older version, in SQL both SQLite and PostgreSQL run."""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "SCHEMA", "MIGRATIONS", "upgrade_statements"]

SCHEMA_VERSION = 7

MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE events ADD COLUMN instance TEXT NOT NULL DEFAULT ''"],
    3: ["CREATE TABLE quarantine_dropped (reason TEXT PRIMARY KEY, messages INTEGER NOT NULL, times INTEGER NOT NULL, "
        "bytes INTEGER NOT NULL)"],
    4: ["ALTER TABLE outbox ADD COLUMN live_bchno TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE outbox ADD COLUMN ref_bchno TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE outbox ADD COLUMN regroup INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE outbox ADD COLUMN uploaded INTEGER NOT NULL DEFAULT 0",
        "UPDATE outbox SET live_bchno = bchno, uploaded = 1 WHERE state = 'done'",
        "CREATE INDEX outbox_by_live ON outbox (live_bchno) WHERE live_bchno <> ''",
        "CREATE INDEX outbox_by_ref ON outbox (ref_bchno) WHERE ref_bchno <> ''",
        "ALTER TABLE ticket_lines ADD COLUMN rows_made INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX events_by_line ON events (line_id) WHERE line_id IS NOT NULL",
        "ALTER TABLE requests ADD COLUMN withdraws TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX requests_by_withdrawn ON requests (withdraws) WHERE withdraws <> ''"],
    5: ["ALTER TABLE rate_hours ADD COLUMN swapped_scans INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE sign_ins (institution TEXT PRIMARY KEY, sign_no TEXT NOT NULL, signed_ms INTEGER NOT NULL)",
        "CREATE TABLE withdrawals (id INTEGER PRIMARY KEY, bchno TEXT NOT NULL, institution TEXT NOT NULL, "
        "infno TEXT NOT NULL, reason TEXT NOT NULL, operator TEXT NOT NULL, state TEXT NOT NULL, request_id INTEGER, "
        "error TEXT NOT NULL DEFAULT '', asked_ms INTEGER NOT NULL, changed_ms INTEGER NOT NULL)",
        "CREATE INDEX withdrawals_by_state ON withdrawals (state)",
        "CREATE INDEX withdrawals_by_bchno ON withdrawals (bchno)",
        "CREATE TABLE adjustments (id INTEGER PRIMARY KEY, institution TEXT NOT NULL, number TEXT NOT NULL, "
        "digest BLOB NOT NULL, chg_type TEXT NOT NULL, list_code TEXT NOT NULL, codes TEXT NOT NULL, "
        "count TEXT NOT NULL, split INTEGER NOT NULL, price TEXT NOT NULL, time_ms INTEGER NOT NULL, "
        "operator TEXT NOT NULL, memo TEXT NOT NULL, state TEXT NOT NULL, request_id INTEGER, "
        "bchno TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', received_ms INTEGER NOT NULL, "
        "changed_ms INTEGER NOT NULL, UNIQUE (institution, number))",
        "CREATE INDEX adjustments_by_state ON adjustments (state)"],
    6: ["CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE, "
        "created_ms INTEGER NOT NULL, revoked_ms INTEGER NOT NULL DEFAULT 0)",
        "ALTER TABLE alerts ADD COLUMN changed_by TEXT NOT NULL DEFAULT ''",
        "CREATE TABLE commands (id INTEGER PRIMARY KEY, device TEXT NOT NULL, command_id INTEGER NOT NULL, "
        "kind TEXT NOT NULL, argument TEXT NOT NULL, issued_by TEXT NOT NULL, issued_ms INTEGER NOT NULL, "
        "state TEXT NOT NULL, sent_ms INTEGER NOT NULL DEFAULT 0, sent_by TEXT NOT NULL DEFAULT '', "
        "answer_ms INTEGER NOT NULL DEFAULT 0, result TEXT NOT NULL DEFAULT '', answer TEXT NOT NULL DEFAULT '', "
        "device_last_id INTEGER NOT NULL DEFAULT 0, answer_signed BLOB, UNIQUE (device, command_id))",
        "CREATE INDEX commands_queued ON commands (issued_ms) WHERE state = 'queued'",
        "CREATE INDEX commands_sent ON commands (sent_ms) WHERE state = 'sent'"],
    7: ["ALTER TABLE ticket_lines ADD COLUMN stood INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE events ADD COLUMN stands_for INTEGER",
        "CREATE INDEX events_loose ON events (terminal, list_code, verdict, event_ms) "
        "WHERE ticket_id IS NULL AND err = 0 AND op IN (1, 6) AND ticket = ''",
        "CREATE INDEX events_by_stand ON events (stands_for) WHERE stands_for IS NOT NULL",
        "CREATE INDEX events_beyond_lines ON events (ticket_id) "
        "WHERE ticket_id IS NOT NULL AND line_id IS NULL AND stands_for IS NULL"],
}
"""Version -> the statements (SQL both engines run) that bring a database from the version before to it."""

SCHEMA = """
CREATE TABLE devices (
    device TEXT PRIMARY KEY, key BLOB NOT NULL, terminal TEXT NOT NULL, institution TEXT NOT NULL,
    institution_type TEXT NOT NULL, region TEXT NOT NULL);
CREATE TABLE device_state (
    device TEXT PRIMARY KEY, acked_seq INTEGER NOT NULL DEFAULT 0, max_seq INTEGER NOT NULL DEFAULT 0,
    stored INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
    last_event_ms INTEGER NOT NULL DEFAULT 0, online INTEGER NOT NULL DEFAULT 0, status_ms INTEGER NOT NULL DEFAULT 0,
    offline_since_ms INTEGER NOT NULL DEFAULT 0,
    firmware TEXT NOT NULL DEFAULT '', uptime_s INTEGER NOT NULL DEFAULT 0, backlog INTEGER NOT NULL DEFAULT 0,
    free_heap INTEGER NOT NULL DEFAULT 0, clock INTEGER NOT NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0,
    boot INTEGER NOT NULL DEFAULT 0, alarms INTEGER NOT NULL DEFAULT 0, mode INTEGER NOT NULL DEFAULT 0,
    journal_used INTEGER NOT NULL DEFAULT 0, journal_capacity INTEGER NOT NULL DEFAULT 0);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, received_ms INTEGER NOT NULL,
    signed BLOB NOT NULL, boot INTEGER NOT NULL, device_time_ms INTEGER NOT NULL, clock INTEGER NOT NULL,
    event_ms INTEGER NOT NULL, terminal TEXT NOT NULL, institution TEXT NOT NULL,
    op INTEGER NOT NULL, kind INTEGER NOT NULL, code TEXT NOT NULL, pid TEXT NOT NULL, serial TEXT NOT NULL,
    lot TEXT NOT NULL, expiry TEXT NOT NULL, made TEXT NOT NULL, err INTEGER NOT NULL, ticket TEXT NOT NULL,
    split_qty INTEGER NOT NULL,
    list_code TEXT NOT NULL, verdict INTEGER NOT NULL, ticket_id INTEGER, line_id INTEGER,
    matching INTEGER NOT NULL DEFAULT 0, UNIQUE (device, seq));
CREATE INDEX events_by_code ON events (code) WHERE err = 0;
CREATE INDEX events_unmatched ON events (terminal, event_ms) WHERE ticket_id IS NULL AND err = 0 AND op IN (1, 6);
CREATE INDEX events_by_ticket ON events (terminal, ticket) WHERE ticket_id IS NULL AND ticket <> '';
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL, topic TEXT NOT NULL, device TEXT NOT NULL,
    reason TEXT NOT NULL, detail TEXT NOT NULL, message BLOB NOT NULL, digest BLOB NOT NULL UNIQUE,
    times INTEGER NOT NULL DEFAULT 1, last_ms INTEGER NOT NULL);
CREATE INDEX quarantine_by_device ON quarantine (device, reason, last_ms);
CREATE TABLE products (
    pid TEXT PRIMARY KEY, list_code TEXT NOT NULL, name TEXT NOT NULL, pack_size INTEGER NOT NULL,
    code_required INTEGER NOT NULL);
CREATE INDEX products_by_list_code ON products (list_code);
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY, terminal TEXT NOT NULL, institution TEXT NOT NULL, number TEXT NOT NULL,
    time_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, digest BLOB NOT NULL, platform TEXT NOT NULL,
    UNIQUE (terminal, number));
CREATE INDEX tickets_by_time ON tickets (terminal, time_ms);
CREATE TABLE ticket_lines (
    id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL, line_no INTEGER NOT NULL, list_code TEXT NOT NULL,
    quantity INTEGER NOT NULL, split INTEGER NOT NULL, required INTEGER NOT NULL, needed INTEGER NOT NULL,
    scans INTEGER NOT NULL DEFAULT 0, checked INTEGER NOT NULL DEFAULT 0, due_ms INTEGER NOT NULL);
CREATE INDEX ticket_lines_by_ticket ON ticket_lines (ticket_id);
CREATE INDEX ticket_lines_due ON ticket_lines (due_ms) WHERE checked = 0;
CREATE TABLE codes (
    code TEXT PRIMARY KEY, whole_net INTEGER NOT NULL, split_net INTEGER NOT NULL, sales INTEGER NOT NULL,
    last_event INTEGER NOT NULL, last_institution TEXT NOT NULL, last_type TEXT NOT NULL, last_region TEXT NOT NULL,
    last_ms INTEGER NOT NULL);
CREATE TABLE code_inbound (code TEXT NOT NULL, institution TEXT NOT NULL, PRIMARY KEY (code, institution));
CREATE TABLE stock (
    institution TEXT NOT NULL, pid TEXT NOT NULL, inbound INTEGER NOT NULL DEFAULT 0, sold INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (institution, pid));
CREATE TABLE rate_hours (
    institution TEXT NOT NULL, terminal TEXT NOT NULL, hour INTEGER NOT NULL,
    scans INTEGER NOT NULL DEFAULT 0, valid_scans INTEGER NOT NULL DEFAULT 0, sale_scans INTEGER NOT NULL DEFAULT 0,
    duplicate_sales INTEGER NOT NULL DEFAULT 0, matched_scans INTEGER NOT NULL DEFAULT 0,
    mismatched_scans INTEGER NOT NULL DEFAULT 0, units_required INTEGER NOT NULL DEFAULT 0,
    units_covered INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL DEFAULT 0, uploaded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (institution, terminal, hour));
CREATE INDEX rate_hours_by_hour ON rate_hours (hour);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL,
    institution TEXT NOT NULL, terminal TEXT NOT NULL, device TEXT NOT NULL, subject TEXT NOT NULL,
    detail TEXT NOT NULL, count INTEGER NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
    changed_ms INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '', events TEXT NOT NULL, tickets TEXT NOT NULL);
CREATE INDEX alerts_live ON alerts (type, subject) WHERE state <> 'resolved';
CREATE INDEX alerts_by_state ON alerts (state, last_ms);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL UNIQUE, institution TEXT NOT NULL, infno TEXT NOT NULL,
    state TEXT NOT NULL, ready_ms INTEGER NOT NULL, request_id INTEGER, bchno TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '', changed_ms INTEGER NOT NULL);
CREATE INDEX outbox_pending ON outbox (ready_ms) WHERE state = 'pending';
CREATE INDEX outbox_by_state ON outbox (state);
CREATE INDEX outbox_by_request ON outbox (request_id);
CREATE TABLE requests (
    id INTEGER PRIMARY KEY, institution TEXT NOT NULL, infno TEXT NOT NULL, msgid TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_ms INTEGER NOT NULL,
    lease_until_ms INTEGER NOT NULL DEFAULT 0, claimed_by TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL,
    done_ms INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX requests_open ON requests (next_ms) WHERE state = 'open';
"""
"""Version 1 of the tables; `MIGRATIONS` take it to `SCHEMA_VERSION`."""


def upgrade_statements(version: int) -> list[str]:
    """What brings a database at `version` (0: empty) to SCHEMA_VERSION."""
    statements = [part.strip() for part in SCHEMA.split(";") if part.strip()] if version == 0 else []
    for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
        statements += MIGRATIONS[step]
    return statements
