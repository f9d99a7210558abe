"""Provisioning: one command enrols a device; the broker then lets it publish only as itself."""

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from system.fixtures import wait_until

from harness.broker import Broker, add_service_user
from harness.gateway_process import GatewayProcess
from harness.virtual_device import VirtualDevice
from tools import provision as provisioning
from tools.provision import acl_block, write_acl


def provision(tmp_path, device, *extra):
    done = subprocess.run([sys.executable, "-m", "tools.provision", "--device", device, "--board", "linux",
                           "--terminal", f"T-{device}",
                           "--institution", "P44030000001", "--region", "440300", "--broker-host", "127.0.0.1",
                           "--out", str(tmp_path / "devices"), "--gateway-config", str(tmp_path / "gateway.toml"),
                           "--passwd", str(tmp_path / "passwd"), "--acl", str(tmp_path / "acl"), *extra],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.JSONDecoder().raw_decode(done.stdout)[0]  # with --flash, trace-flash's own lines follow it
    return report, json.loads((tmp_path / "devices" / device / "config.json").read_text())


def _add_gateway_user(folder):
    """The gateway's own broker user, with every device's topics (as docs/technician-guide.md says)."""
    add_service_user(folder / "passwd", folder / "acl", "gateway", "gw-secret")


@pytest.fixture
def enrolled(tmp_path):
    (tmp_path / "gateway.toml").write_text(f'data_dir = "{tmp_path / "gw-data"}"\n')
    report, config_a = provision(tmp_path, "dev-a")
    _, config_b = provision(tmp_path, "dev-b")
    _add_gateway_user(tmp_path)
    return tmp_path, report, config_a, config_b


def test_files_are_owner_only_and_secrets_stay_out_of_the_output(enrolled):
    folder, report, config_a, config_b = enrolled
    for path in (folder / "devices" / "dev-a" / "config.json", folder / "passwd", folder / "acl"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert config_a["key_hex"] not in json.dumps(report) and "mqtt_password" not in report
    assert len(bytes.fromhex(config_a["key_hex"])) == 32 and config_a["key_hex"] != config_b["key_hex"]
    assert acl_block("dev-a") in (folder / "acl").read_text()
    shown, _ = provision(folder, "dev-c", "--show-secrets")
    assert len(shown["key_hex"]) == 64 and shown["mqtt_password"]


def test_reprovisioning_replaces_the_acl_block():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "acl"
        write_acl(path, "dev-a")
        write_acl(path, "dev-b")
        write_acl(path, "dev-a")
        assert path.read_text().count("# device dev-a") == 1 and "# device dev-b" in path.read_text()


def test_bad_input_is_refused_clearly(tmp_path):
    (tmp_path / "gateway.toml").write_text("[ingest\n")
    done = subprocess.run([sys.executable, "-m", "tools.provision", "--device", "bad/id", "--board", "rp2",
                           "--terminal", "T",
                           "--institution", "P", "--broker-host", "h", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "must be 1-32 of" in done.stderr
    done = subprocess.run([sys.executable, "-m", "tools.provision", "--device", "dev-x", "--board", "rp2",
                           "--terminal", "T",
                           "--institution", "P", "--broker-host", "h", "--out", str(tmp_path),
                           "--gateway-config", str(tmp_path / "gateway.toml")], capture_output=True, text=True)
    assert done.returncode == 2 and "not valid TOML" in done.stderr


def test_a_board_config_gets_valid_pins_a_watchdog_and_a_clock_floor(tmp_path):
    (tmp_path / "gateway.toml").write_text(f'data_dir = "{tmp_path / "gw-data"}"\n')
    started = int(time.time())
    _, pico = provision(tmp_path, "dev-pico", "--board", "rp2", "--set", "wifi_ssid=Shop")
    assert pico["uart"] == {"baud": 9600, "id": 0, "tx": 16, "rx": 17} and pico["watchdog_ms"] == 8000
    assert started <= pico["clock_floor_s"] <= time.time() and "ntp_host" not in pico  # the broker host
    _, esp = provision(tmp_path, "dev-esp", "--board", "esp32", "--ntp-host", "10.0.0.9",
                       "--set", 'uart={"tx": 4, "rx": 35}')
    assert esp["uart"] == {"baud": 9600, "id": 1, "tx": 4, "rx": 35} and esp["ntp_host"] == "10.0.0.9"
    _, linux = provision(tmp_path, "dev-linux", "--board", "linux")
    assert "watchdog_ms" not in linux and "uart" not in linux  # systemd restarts it; the port is set at install


@pytest.mark.parametrize("board, setting, words", [
    ("rp2", 'uart={"id": 1, "tx": 17, "rx": 16}', "'uart.tx': GP17 is UART0 RX on the RP2040, not UART1 TX"),
    ("esp32", 'uart={"tx": 36}', "'uart.tx': GPIO36 is input-only"),
    ("rp2", "watchdog_ms=20000", "'watchdog_ms': expected 0 (off) or 2000-8388 on rp2"),
    ("linux", "brokr_port=1", "'brokr_port' is unknown"),
])
def test_a_config_the_board_would_refuse_is_refused_before_anything_is_written(tmp_path, board, setting, words):
    (tmp_path / "gateway.toml").write_text(f'data_dir = "{tmp_path / "gw-data"}"\n')
    done = subprocess.run([sys.executable, "-m", "tools.provision", "--device", "dev-x", "--board", board,
                           "--terminal", "T", "--institution", "P", "--broker-host", "h", "--out",
                           str(tmp_path / "devices"), "--gateway-config", str(tmp_path / "gateway.toml"),
                           "--passwd", str(tmp_path / "passwd"), "--acl", str(tmp_path / "acl"), "--set", setting],
                          capture_output=True, text=True)
    assert done.returncode == 2 and f"device config for {board}: config field {words}" in done.stderr
    assert not (tmp_path / "devices").exists() and not (tmp_path / "passwd").exists()


def _refusal(folder, capsys, device, *extra):
    """trace-provision's exit status and its one line of error, for `device` on the `enrolled` files."""
    status = provisioning.main(["--device", device, "--board", "linux", "--terminal", "T9",
                                "--institution", "P44030000001",
                                "--broker-host", "127.0.0.1", "--out", str(folder / "devices"),
                                "--gateway-config", str(folder / "gateway.toml"), "--passwd", str(folder / "passwd"),
                                "--acl", str(folder / "acl"), *extra])
    error = capsys.readouterr().err
    assert status == 2 and error.count("\n") == 1, (status, error)
    return error


def test_ids_of_service_users_are_refused_even_with_replace(enrolled, capsys):
    """A device's id becomes its broker login and client id: it must never be a service's."""
    folder = enrolled[0]
    (folder / "gateway.toml").write_text(f'data_dir = "{folder / "gw-data"}"\n[ingest]\nusername = "gw-east"\n')
    add_service_user(folder / "passwd", folder / "acl", "pos-t01", "pos-secret")
    subprocess.run(["mosquitto_passwd", "-b", str(folder / "passwd"), "gw-spare", "x"], check=True)
    before = {name: (folder / name).read_text() for name in ("passwd", "acl")}
    for device, reason in [("gw-east", "is the gateway's broker user in"), ("gateway", "is a service user in"),
                           ("pos-t01", "is a service user in"), ("gw-spare", "is already a broker user in")]:
        for extra in ((), ("--replace",)):
            assert reason in _refusal(folder, capsys, device, *extra)
    (folder / "gateway.toml").write_text(f'data_dir = "{folder / "gw-data"}"\n[ingest]\nclient_id = "gw-anon"\n')
    assert "is the gateway's client id in" in _refusal(folder, capsys, "gw-anon", "--replace")
    assert {name: (folder / name).read_text() for name in ("passwd", "acl")} == before
    assert not (folder / "devices" / "gw-east").exists()


def test_an_existing_device_is_reprovisioned_only_with_replace(enrolled, capsys):
    folder, _, config_a, _ = enrolled
    assert "--replace gives it a new key" in _refusal(folder, capsys, "dev-a")
    assert json.loads((folder / "devices" / "dev-a" / "config.json").read_text()) == config_a
    _, renewed = provision(folder, "dev-a", "--replace")
    assert renewed["key_hex"] != config_a["key_hex"] and renewed["mqtt_password"] != config_a["mqtt_password"]
    assert (folder / "acl").read_text().count("# device dev-a\n") == 1


def _gateway(folder, broker):
    """The gateway as the broker's user "gateway", on the registry trace-provision wrote."""
    (folder / "gw").mkdir()
    return GatewayProcess(folder / "gw", broker, mqtt_user="gateway", mqtt_password="gw-secret",
                          data_dir=folder / "gw-data")


def _first_scan_is_stored(gateway, device, name):
    gateway.start()
    device.start()
    device.wait_for(r"^signal online", timeout=20)
    device.scan(b"81234560000000000001")
    device.wait_for(r"^signal ok seq=1$", timeout=15)
    assert gateway.count(name) == 1


def test_an_enrolled_device_works_and_cannot_publish_as_another(enrolled):
    folder, _, config_a, config_b = enrolled
    broker = Broker(folder / "broker", password_file=folder / "passwd", acl_file=folder / "acl")
    broker.start()
    gateway = _gateway(folder, broker)
    device = VirtualDevice(folder / "run-a", {**config_a, "broker_port": broker.port, "ack_timeout_s": 3})
    try:
        _first_scan_is_stored(gateway, device, "dev-a")

        from tcagent.codec import codes, cose, event

        def signed(name, key_hex, seq):
            scan = codes.decode(b"81234560000000000099")
            payload = event.encode(name, seq, 1, 0, 1, 0, 1, scan, "", 0)
            return cose.sign(cose.MacKey(bytes.fromhex(key_hex)), payload, name.encode())

        # its client id becomes "dev-a" (the broker binds ids to user names): it can only bump dev-a itself
        impostor = paho.Client(CallbackAPIVersion.VERSION2, client_id="impostor")
        impostor.username_pw_set("dev-a", config_a["mqtt_password"])
        impostor.connect("127.0.0.1", broker.port)
        impostor.loop_start()
        assert wait_until(impostor.is_connected, 10)
        # dev-a's credentials, dev-b's topic and even dev-b's key: the broker drops it before the gateway
        try:  # the broker drops it (and may drop the connection of the 3.1.1 client that tried)
            impostor.publish("tc/v1/dev-b/ev", signed("dev-b", config_b["key_hex"], 1), qos=1).wait_for_publish(5)
        except RuntimeError:
            pass
        time.sleep(0.5)
        assert wait_until(impostor.is_connected, 10)  # paho reconnects
        impostor.publish("tc/v1/dev-a/ev", signed("dev-a", config_a["key_hex"], 2), qos=1).wait_for_publish(5)
        assert wait_until(lambda: gateway.count("dev-a") == 2, 10)  # its own topic still works
        time.sleep(1)
        assert gateway.count("dev-b") == 0 and gateway.quarantine() == []
        impostor.loop_stop()
        impostor.disconnect()

        answers = []
        refused = paho.Client(CallbackAPIVersion.VERSION2, client_id="guess")
        refused.username_pw_set("dev-a", "guessed")
        refused.on_connect = lambda client, userdata, flags, reason, properties: answers.append(reason)
        refused.connect("127.0.0.1", broker.port)
        refused.loop_start()
        assert wait_until(lambda: answers, 5)
        refused.loop_stop()
        assert answers[0].is_failure and not refused.is_connected()
    finally:
        device.stop()
        gateway.stop()
        broker.stop()


def test_over_the_tls_listener_with_the_provisioned_ca(tmp_path):
    from tools.certs import TlsFiles

    (tmp_path / "gateway.toml").write_text(f'data_dir = "{tmp_path / "gw-data"}"\n')
    report, config = provision(tmp_path, "dev-t", "--tls-dir", str(tmp_path / "tls"))
    assert report["tls"] and config["tls"] is True and config["tls_ca"] == "ca.crt"
    assert config["broker_port"] == 8883  # TLS's port unless one is named (it was 1883)
    _, named = provision(tmp_path, "dev-u", "--tls-dir", str(tmp_path / "tls"), "--broker-port", "8884")
    _, plain = provision(tmp_path, "dev-v")
    assert named["broker_port"] == 8884 and plain["broker_port"] == 1883
    assert (tmp_path / "devices" / "dev-t" / "ca.crt").read_bytes() == (tmp_path / "tls" / "ca.crt").read_bytes()
    _add_gateway_user(tmp_path)
    tls = TlsFiles(tmp_path / "tls" / "ca.crt", tmp_path / "tls" / "server.crt", tmp_path / "tls" / "server.key")
    broker = Broker(tmp_path / "broker", password_file=tmp_path / "passwd", acl_file=tmp_path / "acl", tls=tls)
    broker.start()
    gateway = _gateway(tmp_path, broker)
    device = VirtualDevice(tmp_path / "run-t", {**config, "broker_port": broker.tls_port, "ack_timeout_s": 3,
                                                "tls_ca": str(tmp_path / "devices" / "dev-t" / "ca.crt")})
    try:
        _first_scan_is_stored(gateway, device, "dev-t")
    finally:
        device.stop()
        gateway.stop()
        broker.stop()


def test_provision_and_flash_in_one_step(tmp_path):
    """--flash runs trace-flash with the config just written (here: a Linux board's root file system)."""
    (tmp_path / "gateway.toml").write_text(f'data_dir = "{tmp_path / "gw-data"}"\n')
    board = tmp_path / "board"
    (board / "etc").mkdir(parents=True)
    shutil.copyfile("/etc/passwd", board / "etc" / "passwd")
    user = "daemon" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    report, config = provision(tmp_path, "dev-one", "--flash", "linux", "--root", str(board), "--arch", "x86_64",
                               "--user", user)
    assert report["device"] == "dev-one"
    installed = board / "opt" / "tcagent" / "config.json"
    assert json.loads(installed.read_text()) == {**config, "data_dir": "/var/lib/tcagent"}  # the unit's state dir
    assert installed.stat().st_mode & 0o777 == 0o600
    assert (board / "etc" / "systemd" / "system" / "tcagent.service").exists()


def test_a_flash_that_fails_leaves_the_device_enrolled_and_says_what_to_run(tmp_path):
    (tmp_path / "gateway.toml").write_text(f'data_dir = "{tmp_path / "gw-data"}"\n')
    board = tmp_path / "board"
    board.mkdir()  # no /etc/passwd: the service user cannot be checked, nothing is installed
    done = subprocess.run([sys.executable, "-m", "tools.provision", "--device", "dev-two", "--board", "linux",
                           "--terminal", "T2", "--institution", "P44030000001", "--broker-host", "127.0.0.1",
                           "--out", str(tmp_path / "devices"), "--gateway-config", str(tmp_path / "gateway.toml"),
                           "--flash", "linux", "--root", str(board), "--arch", "x86_64", "--user", "nobody-here"],
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert json.JSONDecoder().raw_decode(done.stdout)[0]["device"] == "dev-two"  # enrolled
    assert "the device is enrolled but flashing failed; once the board is fixed run: trace-flash linux" in done.stderr
    assert f"--config {tmp_path / 'devices' / 'dev-two' / 'config.json'}" in done.stderr


def test_a_bad_flash_option_is_refused_before_the_device_is_enrolled(tmp_path):
    """A new user's attack: `--arch mips` was refused by trace-flash only after the enrolment, which a second try
    then refused as already provisioned."""
    (tmp_path / "gateway.toml").write_text(f'data_dir = "{tmp_path / "gw-data"}"\n')
    done = subprocess.run([sys.executable, "-m", "tools.provision", "--device", "dev-three", "--board", "linux",
                           "--terminal", "T3", "--institution", "P44030000001", "--broker-host", "127.0.0.1",
                           "--out", str(tmp_path / "devices"), "--gateway-config", str(tmp_path / "gateway.toml"),
                           "--flash", "linux", "--root", str(tmp_path), "--arch", "mips"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "invalid choice: 'mips'" in done.stderr and done.stdout == ""
    assert not (tmp_path / "devices" / "dev-three").exists()


def test_flash_needs_a_target(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        provisioning.main(["--device", "d", "--board", "linux", "--terminal", "T", "--institution", "P1",
                           "--broker-host", "h", "--flash"])
    assert stopped.value.code == 2 and "--flash needs a target first: one of esp32, pico, linux" in \
        capsys.readouterr().err
