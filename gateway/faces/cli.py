"""trace-gateway: run the gateway service, manage its registry and catalog, and read rates and alerts.

    trace-gateway [--config gateway.toml] run
    trace-gateway --config gateway.toml check-config
    trace-gateway --version
    trace-gateway device add --device dev-0001 --key-file dev-0001.key --terminal T01 --institution P44030000001
    trace-gateway catalog import products.csv
    trace-gateway rates [--scope institution] [--day 2026-11-22 | --window | --window-h 24] [--json]
    trace-gateway alerts [--state live] [--type repeat_sale] [--json]
    trace-gateway alert ID acknowledged|resolved [--note TEXT]
    trace-gateway devices [--json]
    trace-gateway outbox [--dead] [--rows]
    trace-gateway requeue ID ... | --all
    trace-gateway withdraw BCHNO --reason TEXT [--operator NAME]
    trace-gateway withdrawals [--state asked|sending|done|refused] [--json]
    trace-gateway replay DIR [--database FILE]
    trace-gateway users add NAME --role read|acknowledge|admin
    trace-gateway users list | revoke NAME
    trace-gateway command DEVICE mode 3 | config debounce_ms=500 | resend 120 | reboot | time [--wait 20]
    trace-gateway commands [--device DEVICE] [--json]
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gateway import config, logs, version
from gateway.domain import alerts, catalog, control, devices, outbox, rates, users, withdrawals
from gateway.errors import GatewayError
from gateway.faces import cli_tables
from gateway.faces.filters import period_from
from gateway.store.base import Device, Store, Tx
from gateway.store.opening import open_store
from gateway.wire.protocol import DEVICE_ID_PATTERN

T = TypeVar("T")


class UsageError(GatewayError):
    """A command line that does not say what it means (an argument of the wrong shape); printed by `_refused`."""

    kind = "malformed"


def _store(settings: config.Settings) -> Store:
    return open_store(settings.store_location)


def _read(settings: config.Settings, query: Callable[[Tx], T]) -> T:
    """`query` on a read view of the gateway's database."""
    store = _store(settings)
    try:
        with store.reading() as tx:
            return query(tx)
    finally:
        store.close()


def add_device(settings: config.Settings, options: argparse.Namespace) -> int:
    if not DEVICE_ID_PATTERN.fullmatch(options.device):
        raise UsageError(f"device id {options.device!r} is not 1-32 of [A-Za-z0-9_-]")
    try:
        key = bytes.fromhex(Path(options.key_file).read_text().strip())
    except (OSError, ValueError) as error:
        raise UsageError(f"{options.key_file}: cannot read a hex key: {error}") from None
    if len(key) != 32:
        raise UsageError(f"{options.key_file}: expected 32 bytes as 64 hex digits, got {len(key)} bytes")
    store = _store(settings)
    store.add_device(Device(device=options.device, key=key, terminal=options.terminal,
                            institution=options.institution, institution_type=options.type, region=options.region))
    store.close()
    print(f"device {options.device} registered for terminal {options.terminal} of {options.institution}")
    return 0


def import_catalog(settings: config.Settings, options: argparse.Namespace) -> int:
    try:
        products = catalog.read_csv(Path(options.file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, catalog.CatalogError) as error:
        raise catalog.CatalogError(f"{options.file}: nothing imported: {error}") from None
    store = _store(settings)
    with store.transaction() as tx:
        written = catalog.replace_products(tx, products)
    store.close()
    print(f"{written} products imported from {options.file}")
    return 0


def show_rates(settings: config.Settings, options: argparse.Namespace) -> int:
    query = {"day": options.day} if options.day else {"window_h": str(options.window_h)} if options.window_h else {}
    if options.window:
        query = {"period": "window"}
    period = period_from(query, settings.rules)
    rows = _read(settings, lambda tx: rates.query(tx, period, scope=options.scope,
                                                 institution=options.institution or ""))
    if options.json:
        print(json.dumps([row.as_dict() for row in rows], ensure_ascii=False, indent=1))
    else:
        print(f"rates per {options.scope}, {period.label} ({settings.rules.timezone})")
        print(cli_tables.rates_table(rows) if rows else "nothing recorded in this period")
    return 0


def show_alerts(settings: config.Settings, options: argparse.Namespace) -> int:
    found = _read(settings, lambda tx: alerts.list_alerts(tx, state=options.state, kind=options.type or "",
                                                          limit=options.limit))
    if options.json:
        print(json.dumps([alert.as_dict() for alert in found], ensure_ascii=False, indent=1))
    else:
        print(cli_tables.alerts_table(found, settings.rules.timezone) if found else "no alerts")
    return 0


def change_alert(settings: config.Settings, options: argparse.Namespace) -> int:
    store = _store(settings)
    try:
        with store.transaction() as tx:
            alert = alerts.change_state(tx, options.id, options.state, note=options.note,
                                        now_ms=time.time_ns() // 1_000_000, by=_cli_user())
    finally:
        store.close()
    print(f"alert {alert.id} ({alert.type}) is {alert.state}")
    return 0


def show_devices(settings: config.Settings, options: argparse.Namespace) -> int:
    found = _read(settings, devices.list_devices)
    if options.json:
        print(json.dumps([device.as_dict() for device in found], ensure_ascii=False, indent=1))
    else:
        print(cli_tables.devices_table(found, settings.rules.timezone) if found else "no devices registered")
    return 0


def show_outbox(settings: config.Settings, options: argparse.Namespace) -> int:
    counts = _read(settings, lambda tx: outbox.state_counts(tx, now_ms=time.time_ns() // 1_000_000,
                                                            sale_hold_ms=settings.forward.sale_hold_s * 1000))
    letters = _read(settings, lambda tx: outbox.dead_letters(tx, limit=options.limit)) if options.dead else []
    print(cli_tables.table(list(counts), [list(counts.values())]))
    if options.rows:
        held = _read(settings, lambda tx: outbox.live_rows(tx, limit=options.limit))
        print()
        print(cli_tables.table(["bchno", "infno", "institution", "codes", "accepted"],
                               [[item["bchno"], item["infno"], item["institution"], item["codes"],
                                 cli_tables.local_time(int(str(item["changed_ms"])), settings.rules.timezone)]
                                for item in held])
              if held else "the platform holds no rows from this gateway")
    if options.dead:
        print()
        print(cli_tables.table(["id", "event", "code", "infno", "bchno", "error"],
                               [[item["id"], item["event_id"], item["code"], item["infno"], item["bchno"],
                                 str(item["error"])[:100]] for item in letters]) if letters else "no dead letters")
    return 0


def requeue(settings: config.Settings, options: argparse.Namespace) -> int:
    if not options.all and not options.ids:
        raise UsageError("name outbox ids (see outbox --dead) or --all")
    store = _store(settings)
    with store.transaction() as tx:
        unknown = [] if options.all else sorted(set(options.ids) - outbox.dead_among(tx, options.ids))
        count = outbox.requeue(tx, None if options.all else options.ids, now_ms=time.time_ns() // 1_000_000)
    store.close()
    print(f"{count} dead letters sent back to the outbox")
    if unknown:
        print(f"trace-gateway requeue: no dead letter with id {', '.join(map(str, unknown))} (see outbox --dead)",
              file=sys.stderr)
        return 1
    return 0


def withdraw(settings: config.Settings, options: argparse.Namespace) -> int:
    store = _store(settings)
    try:
        with store.transaction() as tx:
            asked = outbox.ask_withdrawal(tx, options.bchno, reason=options.reason,
                                    operator=options.operator or _cli_user(), now_ms=time.time_ns() // 1_000_000)
    finally:
        store.close()
    print(f"withdrawal {asked.id} of row {asked.bchno} ({asked.infno}) asked; the forwarder sends it "
          "(trace-gateway withdrawals shows its state)")
    return 0


def show_withdrawals(settings: config.Settings, options: argparse.Namespace) -> int:
    found = _read(settings, lambda tx: withdrawals.listing(tx, state=options.state, limit=options.limit))
    if options.json:
        print(json.dumps([item.as_dict() for item in found], ensure_ascii=False, indent=1))
    else:
        print(cli_tables.table(["id", "bchno", "infno", "state", "asked", "operator", "reason", "error"],
                               [[item.id, item.bchno, item.infno, item.state,
                                 cli_tables.local_time(item.asked_ms, settings.rules.timezone), item.operator,
                                 item.reason[:60], item.error[:60]] for item in found]) if found else "no withdrawals")
    return 0


def check_config(settings: config.Settings, options: argparse.Namespace) -> int:
    """The file loaded (every key and the checks across keys passed); say what it sets up."""
    print(f"{options.config or 'embedded defaults'}: OK")
    print(f"  database   {settings.store_location.split('@')[-1]}")
    print(f"  broker     {settings.ingest.broker_host}:{settings.ingest.broker_port} as "
          f"{settings.ingest.client_id!r}" + (f" (user {settings.ingest.username!r})" if settings.ingest.username
                                               else " (anonymous)"))
    print("  api        " + (f"http://{settings.api.host}:{settings.api.port}" if settings.api.enabled else "off"))
    print(f"  forwarding {settings.forward.base_url or 'off'}")
    return 0


def _cli_user() -> str:
    """Who acts from the CLI, as the audit log and the alerts record it: cli:<login name>."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return f"cli:uid{os.getuid()}"


def manage_users(settings: config.Settings, options: argparse.Namespace) -> int:
    now_ms = time.time_ns() // 1_000_000
    store = _store(settings)
    try:
        if options.action == "list":
            with store.reading() as tx:
                print(cli_tables.users_table(users.list_users(tx), settings.rules.timezone))
            return 0
        with store.transaction() as tx:
            if options.action == "add":
                token = users.add_user(tx, options.name, options.role, now_ms=now_ms)
            else:
                users.revoke_user(tx, options.name, now_ms=now_ms)
    finally:
        store.close()
    if options.action == "add":
        print(f"user {options.name} added with the role {options.role}; its token (shown only now):")
        print(token)
    else:
        print(f"user {options.name} revoked: its token stops working within 5 s")
    return 0


def send_command(settings: config.Settings, options: argparse.Namespace) -> int:
    """Queue a command for the running gateway to send, then wait for the device's answer."""
    argument = _command_argument(options.kind, options.argument)
    store = _store(settings)
    try:
        with store.transaction() as tx:
            queued = control.issue(tx, options.device, options.kind, argument, by=_cli_user(),
                                   now_ms=time.time_ns() // 1_000_000)
        print(f"command {queued.id}: {queued.kind} {json.dumps(argument)} for {queued.device} queued "
              f"(command id {queued.command_id})", flush=True)
        deadline = time.monotonic() + options.wait
        command = queued
        while command.state in ("queued", "sent") and time.monotonic() < deadline:
            time.sleep(0.2)
            with store.reading() as tx:
                command = control.get_command(tx, queued.id)
    finally:
        store.close()
    if command.state == "answered":
        shown = "" if command.answer is None else f": {json.dumps(command.answer, ensure_ascii=False)}"
        print(f"{command.device} answered {command.result}{shown}")
        return 0 if command.result == "applied" else 1
    why = ("the gateway has not picked it up: is `trace-gateway run` running with this database?"
           if command.state == "queued" else "sent; the device has not answered (offline, or a different key?)")
    print(f"trace-gateway command: no answer within {options.wait:g} s: {why} "
          f"(see trace-gateway commands --device {command.device})", file=sys.stderr)
    return 1


def _command_argument(kind: str, words: list[str]) -> object:
    """The argument from the command line: a number (mode, resend, time), NAME=VALUE pairs (config), none
    (reboot; time without one sends this machine's clock)."""
    if kind == "config":
        pairs = [word.partition("=") for word in words]
        if not pairs or any(not sep or not value.isdigit() for _, sep, value in pairs):
            raise UsageError("config takes NAME=NUMBER pairs, e.g. debounce_ms=500")
        return {name: int(value) for name, _, value in pairs}
    if kind == "reboot" or (kind == "time" and not words):
        if words:
            raise UsageError("reboot takes no argument")
        return time.time_ns() // 1_000_000 if kind == "time" else None
    if len(words) != 1 or not words[0].isdigit():
        raise UsageError(f"{kind} takes one whole number")
    return int(words[0])


def show_commands(settings: config.Settings, options: argparse.Namespace) -> int:
    found = _read(settings, lambda tx: control.list_commands(tx, device=options.device or "", limit=options.limit))
    if options.json:
        print(json.dumps([command.as_dict() for command in found], ensure_ascii=False, indent=1))
    else:
        print(cli_tables.commands_table(found, settings.rules.timezone) if found else "no commands sent yet")
    return 0


def replay(settings: config.Settings, options: argparse.Namespace) -> int:
    from gateway.domain.replay import replay_folder

    report = replay_folder(Path(options.folder), settings.rules, database=options.database)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trace-gateway", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--config", type=Path, help="TOML file (default: embedded defaults)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the service until SIGTERM")
    commands.add_parser("check-config", help="load the configuration, check it, say what it sets up")
    device = commands.add_parser("device", help="the device registry").add_subparsers(dest="action", required=True)
    add = device.add_parser("add", help="register a device, or update its key and placement")
    add.add_argument("--device", required=True)
    add.add_argument("--key-file", required=True, help="file holding the 32-byte key as 64 hex digits")
    add.add_argument("--terminal", required=True)
    add.add_argument("--institution", required=True)
    add.add_argument("--type", choices=["pharmacy", "hospital"], default="pharmacy")
    add.add_argument("--region", default="", help="administrative division code, e.g. 440300")
    product = commands.add_parser("catalog", help="the product catalog").add_subparsers(dest="action", required=True)
    product.add_parser("import", help="import products from CSV (all rows or none)").add_argument("file")
    rate = commands.add_parser("rates", help="rates per terminal or institution")
    rate.add_argument("--scope", choices=["terminal", "institution"], default="terminal")
    rate.add_argument("--day", help="YYYY-MM-DD in the configured zone (default today)")
    rate.add_argument("--window-h", type=int, help="rolling window of this many hours instead of a day")
    rate.add_argument("--window", action="store_true", help="the configured rolling window (rules.rolling_window_h)")
    rate.add_argument("--institution")
    rate.add_argument("--json", action="store_true")
    alert_list = commands.add_parser("alerts", help="list alerts, newest first")
    alert_list.add_argument("--state", default="live", help="open, acknowledged, resolved, live (default) or ''")
    alert_list.add_argument("--type")
    alert_list.add_argument("--limit", type=int, default=50)
    alert_list.add_argument("--json", action="store_true")
    alert = commands.add_parser("alert", help="acknowledge or resolve an alert")
    alert.add_argument("id", type=int)
    alert.add_argument("state", choices=["acknowledged", "resolved"])
    alert.add_argument("--note", default="")
    commands.add_parser("devices", help="devices with their last status").add_argument("--json", action="store_true")
    box = commands.add_parser("outbox", help="outbox rows by state; --dead lists the dead letters")
    box.add_argument("--dead", action="store_true")
    box.add_argument("--rows", action="store_true", help="list the rows the platform holds (to withdraw one)")
    box.add_argument("--limit", type=int, default=50)
    again = commands.add_parser("requeue", help="send dead letters again (after fixing their cause)")
    again.add_argument("ids", type=int, nargs="*", help="outbox ids (see outbox --dead)")
    again.add_argument("--all", action="store_true")
    taking = commands.add_parser("withdraw", help="have the platform delete a row it accepted (3507), for good")
    taking.add_argument("bchno", help="the row's fixmedins_bchno (see outbox --rows)")
    taking.add_argument("--reason", required=True)
    taking.add_argument("--operator", default="", help="who asks (default: cli:<login>, as the audit log names "
                        "the CLI's user)")
    taken = commands.add_parser("withdrawals", help="operators' withdrawals and their state, newest first")
    taken.add_argument("--state", default="", choices=["", *withdrawals.STATES])
    taken.add_argument("--limit", type=int, default=50)
    taken.add_argument("--json", action="store_true")
    replaying = commands.add_parser("replay", help="load JSONL exports into a fresh store; print rates and alerts")
    replaying.add_argument("folder", help="folder with catalog.csv, devices.jsonl, events.jsonl, tickets.jsonl, "
                           "inbound.jsonl (docs/operations.md)")
    replaying.add_argument("--database", type=Path, help="keep the store in this file (default: a temporary one)")
    people = commands.add_parser("users", help="named API users and their roles").add_subparsers(
        dest="action", required=True)
    adding = people.add_parser("add", help="add a user; prints its token once")
    adding.add_argument("name")
    adding.add_argument("--role", required=True, choices=users.ROLES,
                        help="read: look; acknowledge: also move alerts; admin: also change data, control devices")
    people.add_parser("list", help="users, their roles, when added and revoked")
    people.add_parser("revoke", help="switch a user's token off for good").add_argument("name")
    sending = commands.add_parser("command", help="send a signed command to a device and show its answer")
    sending.add_argument("device")
    sending.add_argument("kind", choices=list(control.KINDS), metavar="{mode,config,resend,reboot,time}")
    sending.add_argument("argument", nargs="*", help="mode: 1-7; resend: first seq; config: NAME=NUMBER ...; "
                         "time: ms since the epoch (default: this machine's clock)")
    sending.add_argument("--wait", type=float, default=20.0, help="seconds to wait for the answer (default 20)")
    audit = commands.add_parser("commands", help="the device command audit log, newest first")
    audit.add_argument("--device")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--json", action="store_true")
    return parser


_COMMANDS = {"check-config": check_config, "catalog": import_catalog, "rates": show_rates, "alerts": show_alerts,
             "alert": change_alert,
             "devices": show_devices, "replay": replay, "device": add_device, "outbox": show_outbox,
             "requeue": requeue, "withdraw": withdraw, "withdrawals": show_withdrawals, "users": manage_users,
             "command": send_command, "commands": show_commands}


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        settings = config.load(options.config)
        if options.command == "run":
            from gateway.service import run

            logs.configure(settings.log_level)
            return run(settings, config_path=options.config)
        return _COMMANDS[options.command](settings, options)
    except GatewayError as error:
        return _refused(options.command, error)


def _refused(command: str, error: GatewayError) -> int:
    """The one place a GatewayError becomes what the operator reads: one line on stderr, no traceback, and the
    exit status: 2 when the gateway's own setup (config, database, the service's start) is unusable, 1 when the
    command was refused."""
    if error.kind == "unusable":
        print(f"trace-gateway: {error}", file=sys.stderr)
        return 2
    print(f"trace-gateway {command}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
