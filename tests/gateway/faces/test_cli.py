"""The operator's commands: registry, catalog, and readable rates, alerts and devices tables."""

import getpass
import json
import sqlite3
import subprocess
import sys

import pytest
from scenario import Scenario, at, code

from gateway.faces import cli_tables


@pytest.fixture
def configured(tmp_path):
    world = Scenario(tmp_path / "data")
    world.counter("dev-a", "A1", "P-A")
    world.ticket("A1", "T1", at(9), ("XA01", 2))
    world.scan("dev-a", code(1), at(9, 1), ticket="T1")
    world.scan("dev-a", code(1), at(9, 2), ticket="T1")
    world.close()
    path = tmp_path / "gateway.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\ndatabase = "{world.location}"\n')

    def cli(*arguments, check=True):
        done = subprocess.run([sys.executable, "-m", "gateway.faces.cli", "--config", str(path), *arguments],
                              capture_output=True, text=True)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    cli.location = world.location
    return cli, tmp_path


def test_rates_alerts_devices_tables(configured):
    cli, _ = configured
    rates = cli("rates", "--day", "2026-11-22").stdout
    assert "rates per terminal, 2026-11-22 (Asia/Shanghai)" in rates
    assert rates.splitlines()[1].split()[:5] == ["institution", "terminal", "coverage", "valid", "duplicate"]
    assert "P-A          A1        50.0%" in rates
    assert "P-A          *" in cli("rates", "--scope", "institution", "--day", "2026-11-22").stdout
    as_json = json.loads(cli("rates", "--day", "2026-11-22", "--json").stdout)
    assert as_json[0]["duplicate_rate"] == 0.5
    assert "nothing recorded" in cli("rates", "--day", "2020-01-01").stdout
    assert "rates per terminal, last 24 h" in cli("rates", "--window").stdout
    alerts = cli("alerts").stdout
    assert "repeat_sale" in alerts and "open" in alerts
    alert_id = json.loads(cli("alerts", "--json").stdout)[0]["id"]
    assert "is acknowledged" in cli("alert", str(alert_id), "acknowledged", "--note", "called the shop").stdout
    assert "is resolved" in cli("alert", str(alert_id), "resolved").stdout
    changed_by = json.loads(cli("alerts", "--state", "resolved", "--json").stdout)[0]["changed_by"]
    assert changed_by == f"cli:{getpass.getuser()}"
    assert "already resolved" in cli("alert", str(alert_id), "resolved", check=False).stderr
    assert cli("alerts").stdout.strip() == "no alerts"
    devices = cli("devices").stdout
    assert "dev-a" in devices and "never" in devices


def test_registry_and_catalog_commands(configured):
    cli, folder = configured
    key = folder / "dev.key"
    key.write_text("00" * 32)
    assert "registered for terminal B1" in cli("device", "add", "--device", "dev-b", "--key-file", str(key),
                                               "--terminal", "B1", "--institution", "P-B").stdout
    key.write_text("00" * 16)
    assert "expected 32 bytes" in cli("device", "add", "--device", "dev-c", "--key-file", str(key), "--terminal",
                                      "C1", "--institution", "P-C", check=False).stderr
    products = folder / "products.csv"
    products.write_text("pid,list_code,name,pack_size\n8000001,XY01,New,5\n")
    assert "1 products imported" in cli("catalog", "import", str(products)).stdout
    products.write_text("pid,list_code,name,pack_size\n8000001,XY01,New,none\n")
    assert "nothing imported" in cli("catalog", "import", str(products), check=False).stderr
    broken = folder / "broken.toml"
    broken.write_text("[ingest]\nport = 1\n")
    done = subprocess.run([sys.executable, "-m", "gateway.faces.cli", "--config", str(broken), "devices"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "ingest.port: unknown key" in done.stderr


def test_table_widths_count_chinese_characters_double():
    text = cli_tables.table(["名称", "n"], [["阿莫西林", 1], ["ab", 22]])
    lines = text.splitlines()
    assert lines[0] == "名称      n" and lines[2] == "阿莫西林  1" and lines[3] == "ab        22"


def test_outbox_dead_letters_and_requeue(configured):
    cli, _ = configured
    from gateway.domain import outbox
    from gateway.store.opening import open_store

    store = open_store(cli.location)
    with store.transaction() as tx:  # no forward.defaults: both sales fail the field check
        outbox.plan(tx, outbox.Planning(batch_size=5, sale_hold_ms=0, timezone="Asia/Shanghai", values={},
                                        defaults={}), now_ms=at(23), limit=100)
    store.close()
    listing = cli("outbox", "--dead").stdout
    # held, pending, sending, done, dead, withheld (the second scan of the one box is no sale of its own),
    # withdrawn, retrying
    assert listing.splitlines()[2].split() == ["0", "0", "0", "0", "1", "1", "0", "0"]
    assert "not sent, fix the data or forward.defaults: manu_lotnum is mandatory and missing" in listing
    assert "1 dead letters sent back" in cli("requeue", "1").stdout
    assert "0 dead letters sent back" in cli("requeue", "--all").stdout
    assert cli("outbox").stdout.splitlines()[2].split() == ["0", "1", "0", "0", "0", "1", "0", "0"]


def test_withdraw_a_row_the_platform_holds(configured):
    cli, _ = configured
    from gateway.store.opening import open_store

    store = open_store(cli.location)
    with store.transaction() as tx:  # the line's row accepted, as a settled request leaves it
        tx.execute("UPDATE outbox SET state = 'done', bchno = 'TCL1', live_bchno = 'TCL1', uploaded = 1 "
                   "WHERE state = 'pending' AND event_id = 1")
    store.close()
    rows = cli("outbox", "--rows").stdout
    assert rows.splitlines()[-1].split()[:4] == ["TCL1", "3505", "P-A", "1"]
    refused = cli("withdraw", "TCL9", "--reason", "typo", check=False)
    assert refused.returncode == 1 and "no row 'TCL9' is held by the platform" in refused.stderr
    asked = cli("withdraw", "TCL1", "--reason", "sale cancelled", "--operator", "店长").stdout
    assert "withdrawal 1 of row TCL1 (3505) asked" in asked
    again = cli("withdraw", "TCL1", "--reason", "sale cancelled", check=False)
    assert again.returncode == 1 and "under way" in again.stderr
    listing = cli("withdrawals").stdout
    assert listing.splitlines()[2].split()[:4] == ["1", "TCL1", "3505", "asked"] and "sale cancelled" in listing
    [item] = json.loads(cli("withdrawals", "--json", "--state", "asked").stdout)
    assert (item["operator"], item["reason"]) == ("店长", "sale cancelled")
    store = open_store(cli.location)
    with store.transaction() as tx:  # a second accepted row, withdrawn without naming an operator
        tx.execute("UPDATE outbox SET state = 'done', bchno = 'TCL2', live_bchno = 'TCL2', uploaded = 1 "
                   "WHERE event_id = 2")
    store.close()
    cli("withdraw", "TCL2", "--reason", "wrong patient")
    newest = json.loads(cli("withdrawals", "--json").stdout)[0]
    assert newest["bchno"] == "TCL2" and newest["operator"] == f"cli:{getpass.getuser()}"


def test_operator_mistakes_end_in_one_clear_line_and_a_non_zero_exit(configured):
    cli, tmp_path = configured
    done = cli("rates", "--day", "2026-13-01", check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr and "day must be YYYY-MM-DD" in done.stderr
    done = cli("requeue", "99999", check=False)
    assert done.returncode == 1 and "no dead letter with id 99999" in done.stderr
    assert cli("requeue", check=False).returncode != 0
    assert cli("--version").stdout.startswith("trace-gateway 0.")


@pytest.mark.parametrize(("text", "message"), [
    ('database = "mysql://x"\n', "database: a postgresql:// URL or the path of a SQLite file"),
    ("[ingest]\nbatch_max = 5000\n", "above the broker's in-flight window"),
    ("[dashboard]\ncoverage_good = 0.8\ncoverage_warn = 0.9\n", "coverage_good (0.8) must be at least"),
    ("[dashboard]\nduplicate_good = 0.05\nduplicate_warn = 0.01\n", "duplicate_good (0.05) must be at most"),
    ("[dashboard]\nupload_good = 1.5\n", "rates from 0 to 1"),
    ('[forward]\nca_file = "/nonexistent/ca.pem"\n', "forward.ca_file: no such file"),
])
def test_check_config_refuses_what_each_key_allows_but_not_together(tmp_path, text, message):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "gateway.faces.cli", "--config", str(path), "check-config"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_check_config_says_what_a_good_file_sets_up(configured):
    cli, _ = configured
    out = cli("check-config").stdout
    assert ": OK" in out and "broker     127.0.0.1:1883" in out and "api        http://127.0.0.1:8080" in out


def test_an_api_port_in_use_is_one_line_not_a_traceback(tmp_path):
    import socket

    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    path = tmp_path / "gateway.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[ingest]\nbroker_port = 1\n[api]\nport = {port}\n')
    done = subprocess.run([sys.executable, "-m", "gateway.faces.cli", "--config", str(path), "run"],
                          capture_output=True, text=True, timeout=60)
    holder.close()
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_users_are_added_listed_and_revoked(configured):
    cli, _ = configured
    added = cli("users", "add", "li.ming", "--role", "acknowledge").stdout
    token = added.split()[-1]
    assert "li.ming added with the role acknowledge" in added and token.startswith("tc_")
    listed = cli("users", "list").stdout
    assert "li.ming" in listed and "acknowledge" in listed and "write-token  admin (legacy shared token)" in listed
    assert token not in listed
    assert "li.ming revoked" in cli("users", "revoke", "li.ming").stdout
    assert "was revoked" in cli("users", "add", "li.ming", "--role", "read", check=False).stderr
    refused = cli("users", "add", "root", "--role", "owner", check=False)
    assert refused.returncode == 2 and "invalid choice: 'owner'" in refused.stderr
    cli("users", "revoke", "write-token")
    rows = [line.split() for line in cli("users", "list").stdout.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [("li.ming", "acknowledge"), ("write-token", "admin"),
                                                  ("read-token", "read")]  # the revoked, then the legacy ones
    assert rows[0][-1] != "-" and rows[1][-1] != "-" and rows[2][-1] == "-"  # revoked ones show when


@pytest.mark.parametrize("arguments, message", [
    (["dev-z", "mode", "3"], "no device 'dev-z' registered"),
    (["dev-a", "mode", "8"], "mode must be a whole number 1-7"),
    (["dev-a", "mode", "three"], "mode takes one whole number"),
    (["dev-a", "config", "debounce_ms"], "config takes NAME=NUMBER pairs"),
    (["dev-a", "config", "broker_port=1"], "cannot change at run time"),
    (["dev-a", "reboot", "now"], "reboot takes no argument"),
])
def test_device_commands_the_device_would_refuse_are_refused_at_once(configured, arguments, message):
    cli, _ = configured
    done = cli("command", *arguments, check=False)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    assert cli("commands").stdout.strip() == "no commands sent yet"


def test_a_command_nobody_sends_says_why(configured):
    cli, _ = configured
    done = cli("command", "dev-a", "mode", "3", "--wait", "0.5", check=False)
    assert done.returncode == 1 and "is `trace-gateway run` running with this database?" in done.stderr
    [row] = json.loads(cli("commands", "--json").stdout)
    assert (row["kind"], row["argument"], row["state"], row["issued_by"]) == (
        "mode", 3, "queued", f"cli:{getpass.getuser()}")


@pytest.mark.parametrize(("arguments", "message"), [
    (("alert", "99999", "resolved"), "trace-gateway alert: no alert 99999"),
    (("command", "ghost", "reboot", "--wait", "0"), "trace-gateway command: no device 'ghost' registered"),
    (("withdraw", "TCL404", "--reason", "mistake"), "trace-gateway withdraw: "),
    (("users", "revoke", "nobody"), "trace-gateway users: "),
    (("rates", "--day", "1999-01-01"), "trace-gateway rates: day must be YYYY-MM-DD from 2000 to 2099"),
])
def test_a_refused_command_is_one_line_and_status_1(configured, arguments, message):
    """Each module raises its own GatewayError; the CLI alone turns it into words and an exit status."""
    cli, _ = configured
    done = cli(*arguments, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_an_unusable_setup_is_one_line_and_status_2(tmp_path):
    """A database made by a newer gateway: the store's GatewayError of kind `unusable`, status 2."""
    database = tmp_path / "gateway.db"
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA user_version = 999")
    path = tmp_path / "gateway.toml"
    path.write_text(f'data_dir = "{tmp_path}"\ndatabase = "{database}"\n')
    done = subprocess.run([sys.executable, "-m", "gateway.faces.cli", "--config", str(path), "devices"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("trace-gateway: ") and "schema version 999" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize("setup, message", [
    ("not a database", "cannot open as the gateway's SQLite database: file is not a database"),
    ("a folder", "cannot open as the gateway's SQLite database"),
    ("under a file", "cannot open as the gateway's SQLite database"),
    ("config not UTF-8", "not UTF-8 text"),
])
def test_a_database_or_config_the_gateway_cannot_read_is_one_line_and_status_2(tmp_path, setup, message):
    """Found by a new user's attack: each of these ended in a Python traceback with status 1."""
    database = {"not a database": tmp_path / "notes.txt", "a folder": tmp_path,
                "under a file": tmp_path / "notes.txt" / "gateway.db"}.get(setup, tmp_path / "gateway.db")
    (tmp_path / "notes.txt").write_text("this is no database, " * 100)
    path = tmp_path / "gateway.toml"
    path.write_bytes(b"\xff\xfe garbage" if setup == "config not UTF-8" else
                     f'data_dir = "{tmp_path}"\ndatabase = "{database}"\n'.encode())
    done = subprocess.run([sys.executable, "-m", "gateway.faces.cli", "--config", str(path), "devices"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("trace-gateway: ") and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
