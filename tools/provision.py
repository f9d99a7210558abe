"""trace-provision: enrol a counter device in one step.

    trace-provision --device dev-0007 --board rp2 --terminal T07 --institution P44030000001 \\
        --broker-host 10.0.0.2 --out devices/ --gateway-config /etc/trace-gateway/gateway.toml \\
        --passwd /etc/mosquitto/passwd --acl /etc/mosquitto/acl [--tls-dir /etc/mosquitto/tls]

It makes the device's 32-byte COSE key and its MQTT password, writes the device's config file (owner-only),
registers the device in the gateway's registry (terminal, institution, type, region), adds the password entry
with Mosquitto's own `mosquitto_passwd`, and writes ACL lines that let the device publish only its events and
status and read only its acks and commands. With --tls-dir it makes (once) a private CA and the broker's server
certificate there, and the device config then connects over TLS, trusting that CA. Keys and passwords are never
printed unless --show-secrets is given.

--board (rp2: Pico and Pico W; esp32; esp32s3; linux) writes that board's scanner UART and watchdog into the
config, and for the microcontrollers the enrolment date as the clock floor (clock_floor_s: a board that lost
its clock and cannot reach NTP still accepts a broker certificate made before it). The whole config, --set
values included, is checked by the firmware's own config check for that board before anything is written: a
UART pin the chip cannot route is refused here, at the desk, with the same message the board would give.

The device id is also its MQTT user name and, on the shipped broker config, its client id. So it refuses an id
that is the gateway's client id or user name (from --gateway-config), a service user of the ACL file (a `user`
line outside a device block: gateway instances, POS systems) or any user already in the password file or device
in the registry. --replace re-provisions an existing device (a new key and password, its ACL block replaced); it
never applies to a service user.

--flash TARGET [FLASH OPTIONS...], given last, provisions and flashes in one step (as ESPHome's `run` does): after
the enrolment it runs `trace-flash TARGET FLASH OPTIONS... --config OUT/<device>/config.json`, e.g.

    trace-provision --device dev-0007 --board esp32 ... --flash esp32 --firmware ESP32_GENERIC-v1.28.0.bin

The two-step path (trace-provision, then trace-flash with --config) stays. A flash that fails leaves the device
enrolled; run the trace-flash command the error names once the board is fixed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gateway import config as gateway_config
from gateway.settings import IngestSettings
from gateway.store.base import Device
from gateway.store.opening import open_store
from gateway.wire import topics
from gateway.wire.protocol import DEVICE_ID_PATTERN
from tcagent import config as device_config_check
from tcagent import pins as device_pins
from tools import flash
from tools.errors import ToolError

if TYPE_CHECKING:
    from tools.certs import TlsFiles

__all__ = ["acl_block", "write_acl", "acl_service_users", "passwd_users", "board_settings", "main"]

BOARDS = ("rp2", "esp32", "esp32s3", "linux")


class ProvisionError(ToolError):
    """Something the technician must fix; the message says what."""


def acl_block(device: str) -> str:
    """The ACL lines of one device: its own topics, in the directions the protocol uses them."""
    return f"# device {device}\nuser {device}\n{topics.device_acl(device)}"


def write_acl(path: Path, device: str) -> None:
    """Add or replace the device's block in the ACL file (other blocks stay as they are)."""
    text = path.read_text() if path.exists() else ""
    blocks = [block for block in text.split("\n\n") if block.strip() and not block.startswith(f"# device {device}\n")]
    blocks.append(acl_block(device).rstrip("\n"))
    _write_private(path, "\n\n".join(block.strip("\n") for block in blocks) + "\n")


def acl_service_users(text: str) -> set[str]:
    """The users of an ACL file that are not devices: every `user` line but those of `# device` blocks."""
    lines = [line.strip() for line in text.splitlines()]
    users = {line.removeprefix("user ").strip() for line in lines if line.startswith("user ")}
    return users - {line.removeprefix("# device ").strip() for line in lines if line.startswith("# device ")}


def passwd_users(text: str) -> set[str]:
    """The user names of a Mosquitto password file (`name:hash` lines)."""
    return {line.partition(":")[0] for line in text.splitlines() if ":" in line and not line.startswith("#")}


def _read(path: Path | None) -> str:
    return path.read_text() if path and path.exists() else ""


def _refuse_taken_id(options: argparse.Namespace, ingest: IngestSettings, registered: bool) -> None:
    """A device's id is its broker login and client id: an id a service or another client already holds would let
    the device take over that login or session, so only a registered device may be re-provisioned (--replace)."""
    device = options.device
    config = options.gateway_config or "the default gateway config"
    service = {user: f"a service user in {options.acl}" for user in acl_service_users(_read(options.acl))}
    service[ingest.client_id] = f"the gateway's client id in {config}"
    if ingest.username:
        service[ingest.username] = f"the gateway's broker user in {config}"
    if device in service:
        raise ProvisionError(f"device id {device!r} is {service[device]}; choose another id")
    in_passwd = device in passwd_users(_read(options.passwd))
    if in_passwd and not registered:
        raise ProvisionError(f"device id {device!r} is already a broker user in {options.passwd} but no device in "
                             f"the gateway's registry (a gateway instance's or a POS's login?); choose another id")
    if (in_passwd or registered) and not options.replace:
        raise ProvisionError(f"device id {device!r} is already provisioned; --replace gives it a new key and "
                             f"password (the device then needs its new config)")


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (keys and passwords live in these files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)
    temporary.replace(path)


def _passwd(path: Path, device: str, password: str) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise ProvisionError("mosquitto_passwd not found: apt-get install mosquitto")
    if not path.exists():
        _write_private(path, "")
    done = subprocess.run([tool, "-b", str(path), device, password], capture_output=True, text=True)
    if done.returncode != 0:
        raise ProvisionError(f"mosquitto_passwd failed for {path}: {done.stderr.strip() or done.stdout.strip()}")
    os.chmod(path, 0o600)


def _tls(folder: Path, hostname: str) -> TlsFiles:
    from tools.certs import TlsFiles, make_ca_and_server  # cryptography, only for a TLS listener

    files = TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    if files.ca_cert.exists() and files.server_cert.exists() and files.server_key.exists():
        return files
    return make_ca_and_server(folder, sorted({hostname, "localhost", "127.0.0.1"}))


def board_settings(board: str, now_s: int) -> dict[str, object]:
    """What a config for `board` carries beyond the defaults: the board's scanner UART (its default pins, to be
    changed with --set uart=...) and watchdog, and the enrolment date as the clock floor."""
    if board == "linux":
        return {}
    defaults: dict[str, dict[str, object]] = device_pins.BOARD_DEFAULTS[board]
    return {"uart": {"baud": 9600, **defaults["uart"]}, "watchdog_ms": defaults["watchdog_ms"], "clock_floor_s": now_s}


def _checked(device_config: dict[str, object], board: str) -> None:
    """The firmware's own check of the config for `board` (unix for linux): refused here, not at the counter."""
    try:
        device_config_check.check(device_config, "unix" if board == "linux" else board)
    except device_config_check.ConfigError as error:
        raise ProvisionError(f"device config for {board}: {error}") from None


def provision(options: argparse.Namespace) -> dict[str, object]:
    device = options.device
    if not DEVICE_ID_PATTERN.fullmatch(device):
        raise ProvisionError(f"device id {device!r} must be 1-32 of [A-Za-z0-9_-] (it is also the MQTT user name)")
    try:
        settings = gateway_config.load(options.gateway_config)
    except gateway_config.ConfigError as error:
        raise ProvisionError(f"gateway config: {error}") from None
    store = open_store(settings.store_location)
    try:
        _refuse_taken_id(options, settings.ingest, store.device_key(device) is not None)
    finally:
        store.close()
    key = secrets.token_bytes(32)
    password = secrets.token_urlsafe(18) if options.passwd else ""
    folder = options.out / device
    device_config: dict[str, object] = {
        "device_id": device, "key_hex": key.hex(), "broker_host": options.broker_host,
        "broker_port": options.broker_port or (8883 if options.tls_dir else 1883), "mqtt_password": password,
        **board_settings(options.board, int(time.time())),
    }
    if options.ntp_host:
        device_config["ntp_host"] = options.ntp_host
    if options.tls_dir:
        device_config.update(tls=True, tls_ca="ca.crt")
    for extra in options.set or []:
        name, _, text = extra.partition("=")
        value = json.loads(text) if text[:1] in "[{0123456789-tfn\"" else text
        present = device_config.get(name)
        device_config[name] = {**present, **value} if isinstance(present, dict) and isinstance(value, dict) else value
    _checked(device_config, options.board)  # before any file is made
    if options.tls_dir:
        files = _tls(options.tls_dir, options.broker_host)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files.ca_cert, folder / "ca.crt")
    _write_private(folder / "config.json", json.dumps(device_config, indent=1) + "\n")
    store = open_store(settings.store_location)
    try:
        store.add_device(Device(device=device, key=key, terminal=options.terminal, institution=options.institution,
                                institution_type=options.type, region=options.region))
    finally:
        store.close()
    if options.passwd:
        _passwd(options.passwd, device, password)
    if options.acl:
        write_acl(options.acl, device)
    return {"device": device, "config": str(folder / "config.json"), "registry": settings.store_location,
            "passwd": str(options.passwd or ""), "acl": str(options.acl or ""), "tls": bool(options.tls_dir),
            **({"key_hex": key.hex(), "mqtt_password": password} if options.show_secrets else {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trace-provision", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", required=True)
    parser.add_argument("--board", required=True, choices=BOARDS, help="rp2 (Pico, Pico W), esp32, esp32s3 or "
                        "linux: the scanner UART's pins and the watchdog the config gets, and how it is checked")
    parser.add_argument("--terminal", required=True)
    parser.add_argument("--institution", required=True)
    parser.add_argument("--type", choices=["pharmacy", "hospital"], default="pharmacy")
    parser.add_argument("--region", default="")
    parser.add_argument("--broker-host", required=True, help="as the device reaches the broker")
    parser.add_argument("--broker-port", type=int, default=0,
                        help="the broker's port for devices (default 1883, or 8883 with --tls-dir)")
    parser.add_argument("--out", type=Path, default=Path("devices"), help="device config goes to OUT/<device>/")
    parser.add_argument("--gateway-config", type=Path, help="the gateway's TOML (its registry); default: defaults")
    parser.add_argument("--passwd", type=Path, help="Mosquitto password file to add the device to")
    parser.add_argument("--acl", type=Path, help="Mosquitto ACL file to add the device's block to")
    parser.add_argument("--tls-dir", type=Path, help="make (once) a private CA and server certificate here; "
                        "the device then connects over TLS")
    parser.add_argument("--ntp-host", help="the NTP server the board sets its clock from (default: the broker host)")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE", help="another device config value "
                        "(e.g. wifi_ssid=Shop, uart={\"id\": 1, \"tx\": 4, \"rx\": 5}; merged into the board's)")
    parser.add_argument("--replace", action="store_true", help="re-provision an existing device: a new key and "
                        "password (never a service user's id)")
    parser.add_argument("--show-secrets", action="store_true", help="print the key and the MQTT password")
    parser.add_argument("--flash", nargs=argparse.REMAINDER, metavar="TARGET ...",
                        help="then flash: the trace-flash target (esp32, pico, linux) and its options, given last")
    options = parser.parse_args(argv)
    if options.flash is not None and (not options.flash or options.flash[0] not in FLASH_TARGETS):
        parser.error(f"--flash needs a target first: one of {', '.join(FLASH_TARGETS)}")
    if options.flash is not None:  # trace-flash's own options are checked before anything is enrolled
        flash.command_line().parse_args([*options.flash, "--config", "config.json"])
    try:
        report = provision(options)
    except (ToolError, OSError) as error:
        print(f"trace-provision: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, ensure_ascii=False, indent=1), flush=True)
    if options.flash is None:
        return 0
    return _flash(options.flash, options.out / options.device / "config.json")


FLASH_TARGETS = ("esp32", "pico", "linux")


def _flash(target_and_options: list[str], config: Path) -> int:
    """The second step of --flash: trace-flash with the config just written."""
    argv = [*target_and_options, "--config", str(config)]
    print(f"trace-provision: enrolled; now trace-flash {' '.join(argv)}", file=sys.stderr, flush=True)
    code = flash.main(argv)
    if code != 0:
        print(f"trace-provision: the device is enrolled but flashing failed; once the board is fixed run: "
              f"trace-flash {' '.join(argv)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
