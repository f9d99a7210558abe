"""Named users and roles: the users table, and the tokens the API takes (legacy shared tokens included)."""

import json

import pytest
from scenario import at, code, one_counter

from gateway.domain import users
from gateway.faces.api import ApiServer
from gateway.metrics import Metrics
from gateway.settings import ApiSettings
from harness.gateway_process import api_call

READ, WRITE = "legacy-read-secret", "legacy-write-secret"


@pytest.fixture
def world(tmp_path):
    with one_counter(tmp_path, "P-A") as world:
        yield world


def test_a_token_is_shown_once_and_only_its_hash_is_kept(world):
    with world.store.transaction() as tx:
        token = users.add_user(tx, "alice", "acknowledge", now_ms=1000)
    assert token.startswith("tc_") and len(token) > 40
    stored = world.store.query("SELECT name, role, token_hash FROM users")
    assert stored == [("alice", "acknowledge", users.token_digest(token))]
    assert token.encode() not in bytes(stored[0][2])


@pytest.mark.parametrize("name, role, error", [
    ("alice", "admin", "exists"), ("bob", "root", "role 'root'"), ("", "read", "user name"),
    ("a b", "read", "user name"), ("x" * 65, "read", "user name"), ("write-token", "read", "legacy"),
    ("carol", "read", "was revoked"),
])
def test_refused_users(world, name, role, error):
    with world.store.transaction() as tx:
        users.add_user(tx, "alice", "read", now_ms=1000)
        users.add_user(tx, "carol", "read", now_ms=1000)
        users.revoke_user(tx, "carol", now_ms=2000)
    with pytest.raises(users.UserError, match=error), world.store.transaction() as tx:
        users.add_user(tx, name, role, now_ms=3000)


def test_revoking(world):
    with world.store.transaction() as tx:
        users.add_user(tx, "alice", "read", now_ms=1000)
        users.revoke_user(tx, "alice", now_ms=2000)
        users.revoke_user(tx, "read-token", now_ms=2000)  # a legacy name: recorded so its shared token stops
        with pytest.raises(users.UserError, match="already revoked"):
            users.revoke_user(tx, "alice", now_ms=3000)
        with pytest.raises(users.UserError, match="no user"):
            users.revoke_user(tx, "nobody", now_ms=3000)
        listed = users.list_users(tx)
    assert [(user.name, user.role, user.revoked_ms) for user in listed] == [
        ("alice", "read", 2000), ("read-token", "read", 2000)]


@pytest.fixture
def api(world):
    server = ApiServer(ApiSettings(port=0), world.store, world.rules, Metrics(world.store), read_token=READ,
                       write_token=WRITE, ready=lambda: {})
    server.start()

    def call(method, path, token, body=None):
        return api_call(server.port, method, path, token, None if body is None else json.dumps(body).encode())

    yield call
    server.stop()


def test_roles_nest_and_every_acknowledgement_names_its_user(world, api):
    with world.store.transaction() as tx:
        tokens = {role: users.add_user(tx, f"{role}-user", role, now_ms=1000) for role in users.ROLES}
    world.status("dev-a", 1000, clock=0)  # raises a clock_unsynced alert
    alert_id = world.alerts("clock_unsynced")[0].id
    command = {"device": "dev-a", "command": "mode", "argument": 3}
    expected = {  # role -> (read, acknowledge, admin) statuses
        "read": (200, 403, 403), "acknowledge": (200, 200, 403), "admin": (200, 200, 202)}
    for role, token in tokens.items():
        assert api("GET", "/api/v1/me", token) == (200, {"name": f"{role}-user", "role": role})
        got = (api("GET", "/api/v1/alerts", token)[0],
               api("POST", f"/api/v1/alerts/{alert_id}", token, {"state": "acknowledged"})[0],
               api("POST", "/api/v1/commands", token, command)[0])
        assert got == expected[role], role
    assert api("GET", f"/api/v1/alerts/{alert_id}", tokens["read"])[1]["changed_by"] == "acknowledge-user"
    status, body = api("POST", f"/api/v1/alerts/{alert_id}", tokens["read"], {"state": "resolved"})
    assert status == 403 and "role read" in body["error"] and "acknowledge" in body["error"]


def test_the_platform_writes_need_admin_and_a_withdrawal_names_who_asked(world, api):
    """Adjustments (3502) and withdrawals (3507) are admin's; the withdrawal records the user unless it names an
    operator. The dashboard's settings name the signed-in user for the page."""
    with world.store.transaction() as tx:
        tokens = {role: users.add_user(tx, f"{role}-user", role, now_ms=1000) for role in users.ROLES}
    document = {"institution": "P-A", "number": "BS-1", "time": "2026-11-22T11:00:00", "list_code": "XA01",
                "codes": [code(7)], "chg_type": "105"}
    assert [api("POST", "/api/v1/adjustments", tokens[role], document)[0] for role in users.ROLES] == [403, 403, 201]
    world.scan("dev-a", code(1), at(9))
    world.scan("dev-a", code(2), at(9, 1))
    with world.store.transaction() as tx:  # both accepted by the platform, as settled requests leave them
        for number in (1, 2):
            tx.execute("UPDATE outbox SET state = 'done', bchno = ?, live_bchno = ?, uploaded = 1 WHERE event_id = ?",
                       (f"TCE{number}", f"TCE{number}", number))
    asked = {"bchno": "TCE1", "reason": "sale cancelled"}
    assert api("POST", "/api/v1/withdrawals", tokens["acknowledge"], asked)[0] == 403
    assert api("POST", "/api/v1/withdrawals", tokens["admin"], asked)[1]["operator"] == "admin-user"
    named = api("POST", "/api/v1/withdrawals", WRITE, {**asked, "bchno": "TCE2", "operator": "店长"})[1]
    assert named["operator"] == "店长"
    settings = api("GET", "/api/v1/dashboard/settings", tokens["acknowledge"])[1]
    assert (settings["user"], settings["role"]) == ("acknowledge-user", "acknowledge")


def test_legacy_tokens_are_users_until_revoked(world, api):
    assert api("GET", "/api/v1/me", READ) == (200, {"name": "read-token", "role": "read"})
    assert api("GET", "/api/v1/me", WRITE) == (200, {"name": "write-token", "role": "admin"})
    assert api("POST", "/api/v1/commands", READ, {"device": "dev-a", "command": "reboot"})[0] == 403
    with world.store.transaction() as tx:
        users.revoke_user(tx, "write-token", now_ms=1000)
    # the copy of the users table is read again at most every 5 s: the revocation shows within that
    assert _eventually(lambda: api("GET", "/api/v1/me", WRITE)[0] == 401)
    assert api("GET", "/api/v1/me", READ)[0] == 200


def test_a_user_added_while_the_api_runs_works_at_once_and_a_revoked_one_stops_within_seconds(world, api):
    assert api("GET", "/api/v1/me", "tc_unknown")[0] == 401
    with world.store.transaction() as tx:
        token = users.add_user(tx, "dora", "read", now_ms=1000)
    assert api("GET", "/api/v1/me", token)[0] == 200
    with world.store.transaction() as tx:
        users.revoke_user(tx, "dora", now_ms=2000)
    assert _eventually(lambda: api("GET", "/api/v1/me", token)[0] == 401)


def _eventually(check, seconds=12.0):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()
