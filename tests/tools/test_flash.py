"""trace-flash: the Linux install runs, the board tree is right, and each mistake gets its own clear error."""

import json
import os
import shutil
import subprocess
import sys
import time
import tty

import pytest
import serial

from tools import flash

CONFIG = {"device_id": "dev-0007", "key_hex": "11" * 32, "broker_host": "127.0.0.1", "broker_port": 9}


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "devices" / "dev-0007" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(CONFIG))
    return path


def run(*arguments):
    done = subprocess.run([sys.executable, "-m", "tools.flash", *arguments], capture_output=True, text=True,
                          timeout=180)
    return done.returncode, done.stdout + done.stderr


SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH systemd gives a service."""


def _unit_values(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(key + "=")]


def test_linux_install_starts_the_agent_as_its_unit_does_and_it_stays_up(tmp_path, config):
    """The agent is started from the unit's own lines: its ExecStart, WorkingDirectory, Environment (on top of
    only what systemd itself sets), as its User; only the file system root is moved under tmp_path."""
    import pwd

    root = tmp_path / "root"
    user = pwd.getpwuid(os.geteuid()).pw_name
    code, output = run("linux", "--config", str(config), "--root", str(root), "--prefix", "/opt/tcagent",
                       "--user", user)
    assert code == 0, output
    prefix = root / "opt" / "tcagent"
    assert (prefix / "main.py").exists() and (prefix / "tcagent" / "agent.py").exists()
    assert oct((prefix / "config.json").stat().st_mode & 0o777) == "0o600"
    unit = (root / "etc" / "systemd" / "system" / "tcagent.service").read_text()
    assert "Restart=always" in unit and "StartLimitBurst=" in unit and "StateDirectory=tcagent" in unit
    analyzer = shutil.which("systemd-analyze")
    if analyzer:
        copy = tmp_path / "tcagent.service"
        copy.write_text(unit.replace("/opt/tcagent", str(prefix)))
        done = subprocess.run([analyzer, "verify", str(copy)], capture_output=True, text=True)
        assert done.returncode == 0 and "tcagent.service" not in done.stderr, done.stderr

    def rooted(text):
        return text.replace("/opt/tcagent", str(prefix)).replace(flash.STATE_DIR, str(root / "var/lib/tcagent"))

    master, slave = os.openpty()
    tty.setraw(master)
    installed = json.loads((prefix / "config.json").read_text())
    assert installed["data_dir"] == flash.STATE_DIR
    installed.update(uart={"port": os.ttyname(slave)}, data_dir=rooted(installed["data_dir"]))
    (prefix / "config.json").write_text(json.dumps(installed))
    (root / "var/lib/tcagent").mkdir(parents=True)  # systemd makes the StateDirectory
    account = pwd.getpwnam(_unit_values(unit, "User")[0])
    environment = {"PATH": SYSTEMD_PATH, "HOME": account.pw_dir, "USER": account.pw_name,
                   "LOGNAME": account.pw_name, "SHELL": account.pw_shell,
                   "STATE_DIRECTORY": str(root / "var/lib/tcagent")}
    environment.update(rooted(value).split("=", 1) for value in _unit_values(unit, "Environment"))
    agent = subprocess.Popen(rooted(_unit_values(unit, "ExecStart")[0]).split(), env=environment,
                             cwd=rooted(_unit_values(unit, "WorkingDirectory")[0]), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        line = b""
        while time.monotonic() < deadline and not line.startswith(b"log agent"):
            line = agent.stdout.readline()
            if not line and agent.poll() is not None:
                break
        assert line.startswith(b"log agent"), (line, agent.stdout.read())
        time.sleep(3)
        assert agent.poll() is None  # it stays up
    finally:
        agent.kill()
        agent.wait()


def test_linux_install_refuses_a_user_that_does_not_exist(tmp_path, config):
    if os.geteuid() != 0:
        pytest.skip("only root hands the config to the service's user")
    code, output = run("linux", "--config", str(config), "--root", str(tmp_path / "root"), "--user", "nosuchuser")
    assert code == 2 and "no user 'nosuchuser'" in output


def test_the_board_tree_is_compiled_with_main_as_source(tmp_path, config):
    tree = flash.agent_tree(tmp_path / "build", config)
    assert (tree / "main.py").read_text().startswith('"""Boot entry')
    assert (tree / "tcagent" / "agent.mpy").exists() and not list((tree / "tcagent").rglob("*.py"))
    assert json.loads((tree / "config.json").read_text())["device_id"] == "dev-0007"


def test_clear_errors(tmp_path, config):
    code, output = run("esp32", "--port", "/dev/ttyNOPE9", "--config", str(config), "--skip-firmware")
    assert code == 2 and "does not exist: is the board plugged in" in output
    code, output = run("esp32", "--config", str(config), "--skip-firmware")  # no board on this machine's USB
    assert code == 2 and "no board found on USB" in output
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"device_id": "x"}))
    master, slave = os.openpty()
    port = os.ttyname(slave)
    code, output = run("esp32", "--port", port, "--config", str(broken), "--skip-firmware")
    assert code == 2 and "key_hex is missing" in output
    with serial.Serial(port, exclusive=True):
        code, output = run("esp32", "--port", port, "--config", str(config), "--skip-firmware")
    assert code == 2 and "is busy" in output
    code, output = run("pico", "--port", port, "--config", str(config), "--firmware", str(config),
                       "--mount", str(tmp_path))
    assert code == 2 and ".uf2" in output
    image = tmp_path / "RPI_PICO_W.uf2"
    image.write_bytes(b"UF2")
    code, output = run("pico", "--port", port, "--config", str(config), "--firmware", str(image),
                       "--mount", str(tmp_path))
    assert code == 2 and "not the Pico's BOOTSEL drive" in output


def test_a_port_that_is_not_a_micropython_board(tmp_path, config):
    master, slave = os.openpty()  # answers nothing, as a board without MicroPython would
    code, output = run("esp32", "--port", os.ttyname(slave), "--config", str(config), "--skip-firmware")
    assert code == 2 and "does not answer as a MicroPython board" in output


class _Listed:
    """What pyserial's port listing gives for one port (the operating system's USB enumeration)."""

    def __init__(self, device, vid, pid):
        self.device, self.vid, self.pid = device, vid, pid


def test_the_board_is_found_by_its_usb_ids_and_several_need_a_choice(monkeypatch, capsys):
    import serial.tools.list_ports

    attached = [_Listed("/dev/ttyS0", None, None), _Listed("/dev/ttyACM0", 0x2E8A, 0x0005),
                _Listed("/dev/ttyUSB3", 0x046D, 0xC52B)]  # a serial port without USB, a Pico, a mouse's receiver
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: attached)
    assert flash.detect_port() == "/dev/ttyACM0"
    assert "Raspberry Pi Pico running MicroPython" in capsys.readouterr().out
    attached.append(_Listed("/dev/ttyUSB0", 0x10C4, 0xEA60))
    with pytest.raises(flash.FlashError, match="2 boards attached: /dev/ttyACM0 .*; /dev/ttyUSB0 .*--port"):
        flash.detect_port()


def test_a_tool_s_progress_shows_as_it_comes_and_its_end_is_in_the_error(tmp_path, monkeypatch, capfd):
    tool = tmp_path / "esptool"
    tool.write_text("#!/bin/sh\nprintf 'Writing at 0x1000 (10 %%)\\r'; sleep 1; printf 'Writing at 0x2000 (50 %%)'\n"
                    "echo; echo 'A fatal error occurred: Failed to connect'; exit 2\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(flash.FlashError, match="(?s)writing MicroPython failed: .*Failed to connect"):
        flash._run(["esptool", "write-flash"], "writing MicroPython")
    out = capfd.readouterr().out  # shown to the technician, not only kept for the error
    assert "-- writing MicroPython" in out and "(10 %)" in out and "(50 %)" in out


def test_monitor_prints_what_the_device_writes(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    monitor = subprocess.Popen([sys.executable, "-m", "tools.flash", "monitor", "--port", port, "--seconds", "3"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    os.write(master, b"signal online\r\nscan taken seq 1\r\n")
    output, errors = monitor.communicate(timeout=20)
    assert monitor.returncode == 0, errors
    assert "signal online" in output and "scan taken seq 1" in output
