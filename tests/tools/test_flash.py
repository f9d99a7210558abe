"""trace-flash: the Linux install runs as its unit says, the board tree is right, and each mistake gets its own
clear error."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

import pytest
import serial
from system.fixtures import wait_until

from harness.virtual_device import LineLog
from tcagent.agent import VERSION
from tools import flash, linux_images

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


@pytest.fixture
def board_root():
    """A board's root file system: readable by the service's user (pytest's own folders are root's only), with
    this machine's users in its /etc/passwd."""
    folder = Path(tempfile.mkdtemp(prefix="board-root-"))
    folder.chmod(0o755)
    (folder / "etc").mkdir()
    shutil.copyfile("/etc/passwd", folder / "etc" / "passwd")
    yield folder
    shutil.rmtree(folder)


def _service_user():
    """The unit's User=: when the tests run as root, an unprivileged system user (systemd warns against nobody),
    else oneself."""
    import pwd

    return "daemon" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


class AsSystemd:
    """The installed agent started from its unit's own lines, as systemd would: ExecStart (the binary it names,
    under qemu-user when it is of another architecture than this machine), WorkingDirectory, Environment on top of
    only what systemd itself sets, User (and the user's groups), the StateDirectory made and given to that user.
    Only the file system root is moved (paths under / become paths under `root`)."""

    def __init__(self, root: Path, unit: str) -> None:
        import pwd

        self.root, self.unit = root, unit
        self.account = pwd.getpwnam(_unit_values(unit, "User")[0])
        self.state = root / flash.STATE_DIR.lstrip("/")
        self.state.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(self.state, self.account.pw_uid, self.account.pw_gid)
        self.process = None

    def rooted(self, text: str) -> str:
        return text.replace("/opt/tcagent", str(self.root / "opt/tcagent")).replace(flash.STATE_DIR, str(self.state))

    def start(self) -> subprocess.Popen:
        account = self.account
        environment = {"PATH": SYSTEMD_PATH, "HOME": account.pw_dir, "USER": account.pw_name,
                       "LOGNAME": account.pw_name, "SHELL": account.pw_shell, "STATE_DIRECTORY": str(self.state)}
        environment.update(self.rooted(value).split("=", 1) for value in _unit_values(self.unit, "Environment"))
        argv = self.rooted(_unit_values(self.unit, "ExecStart")[0]).split()
        if argv[0].endswith("/micropython"):
            argv = [*linux_images.runner(linux_images.arch_of_elf(Path(argv[0]))), *argv]
        as_user = {}
        if os.geteuid() == 0:
            as_user = {"user": account.pw_uid, "group": account.pw_gid,
                       "extra_groups": os.getgrouplist(account.pw_name, account.pw_gid)}
        self.process = subprocess.Popen(argv, env=environment, cwd=self.rooted(_unit_values(self.unit,
                                        "WorkingDirectory")[0]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        **as_user)
        return self.process

    def output(self) -> LineLog:
        """The agent's output lines (what journald would get) as they come."""
        process, log = self.process, LineLog(lambda: self.process.poll() is not None)

        def collect():
            for raw in process.stdout:
                log.add(raw.decode(errors="replace").rstrip("\n"))
            log.wake()

        threading.Thread(target=collect, daemon=True).start()
        return log

    def stop(self) -> int:
        """systemctl stop: SIGTERM (KillSignal=), then SIGKILL after the stop timeout."""
        self.process.terminate()
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the agent ignored SIGTERM") from None


def _board_config(prefix: Path, changes: dict) -> None:
    """Edit the installed config in place (it keeps its owner and mode)."""
    path = prefix / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _install(root, config, *extra):
    code, output = run("linux", "--config", str(config), "--root", str(root), "--prefix", "/opt/tcagent",
                       "--user", _service_user(), *extra)
    assert code == 0, output
    return output, (root / "etc/systemd/system/tcagent.service").read_text()


@pytest.mark.parametrize("arch", linux_images.ARCHES)
def test_linux_install_runs_its_unit_as_systemd_would_and_the_agent_stays_up(board_root, config, arch):
    output, unit = _install(board_root, config, "--arch", arch)
    prefix = board_root / "opt" / "tcagent"
    assert f"MicroPython v1.28.0 for {arch}" in output and "(detected)" not in output
    assert (prefix / "micropython").read_bytes() == linux_images.image(arch).read_bytes()
    assert (prefix / "micropython").stat().st_mode & 0o777 == 0o755
    assert sorted(path.name for path in prefix.iterdir()) == ["config.json", "micropython"]  # the agent is frozen in
    installed = prefix / "config.json"
    assert installed.stat().st_mode & 0o777 == 0o600
    if os.geteuid() == 0:
        import pwd

        assert installed.stat().st_uid == pwd.getpwnam(_service_user()).pw_uid
    assert _unit_values(unit, "ExecStart") == ["/opt/tcagent/micropython -m main /opt/tcagent/config.json"]
    assert _unit_values(unit, "Environment") == ["MICROPYPATH=.frozen"]
    assert _unit_values(unit, "Restart") == ["always"] and _unit_values(unit, "RestartPreventExitStatus") == ["2"]
    assert _unit_values(unit, "StartLimitBurst") == ["5"] and _unit_values(unit, "StateDirectory") == ["tcagent"]
    analyzer = shutil.which("systemd-analyze")
    if analyzer:
        copy = board_root / "tcagent.service"
        copy.write_text(unit.replace("/opt/tcagent", str(prefix)))
        done = subprocess.run([analyzer, "verify", str(copy)], capture_output=True, text=True)
        assert done.returncode == 0 and "tcagent.service" not in done.stderr, done.stderr

    systemd = AsSystemd(board_root, unit)
    master, slave = os.openpty()
    tty.setraw(master)
    if os.geteuid() == 0:
        os.chown(os.ttyname(slave), systemd.account.pw_uid, -1)  # the service user's scanner port (dialout)
    _board_config(prefix, {"uart": {"port": os.ttyname(slave)}, "data_dir": systemd.rooted(flash.STATE_DIR)})
    agent = systemd.start()
    output = systemd.output()
    try:
        # today's version: the frozen agent is the one firmware/ holds (rebuild the images when it changes)
        boot = output.wait_for(rf"^log agent {re.escape(VERSION)} for dev-0007 on unix: .*, code (\S+)$", timeout=20)
        assert boot.group(1) == "tcagent/agent.py"  # the frozen agent, not a copy on disk
        if os.geteuid() == 0:
            assert os.stat(f"/proc/{agent.pid}").st_uid == systemd.account.pw_uid
        for _ in range(10):  # a scan before the agent has opened its port may be flushed by its raw-mode set-up
            os.write(master, b"81234567890123456789\r\n")
            if wait_until(lambda: output.count(r"^signal taken seq=1$"), 2):
                break
        output.wait_for(r"^signal taken seq=1$", timeout=1)  # in the journal, in the state directory, as that user
        time.sleep(3)
        assert agent.poll() is None  # it stays up (no broker: it keeps trying)
    finally:
        assert systemd.stop() == -signal.SIGTERM
        os.close(master)
        os.close(slave)


def test_a_broken_config_ends_the_service_with_one_clear_line(board_root, config):
    """Exit status 2 with `config error: ...`; the unit's RestartPreventExitStatus=2 keeps systemd from
    restarting it (the start limit then covers every other early exit)."""
    _, unit = _install(board_root, config, "--arch", "aarch64")
    _board_config(board_root / "opt" / "tcagent", {"broker_port": 0})
    agent = AsSystemd(board_root, unit).start()
    output, _ = agent.communicate(timeout=30)
    assert agent.returncode == 2 and "2" in _unit_values(unit, "RestartPreventExitStatus")
    assert output.decode().splitlines() == ["config error: config field 'broker_port': expected 1-65535, got 0"]


def test_the_architecture_is_detected_from_the_board_s_root(board_root, config):
    (board_root / "usr/bin").mkdir(parents=True)
    shutil.copyfile(linux_images.image("armhf"), board_root / "usr/bin/env")  # an ELF of the board's userland
    output, _ = _install(board_root, config)
    assert "MicroPython v1.28.0 for armhf (detected)" in output
    assert (board_root / "opt/tcagent/micropython").read_bytes() == linux_images.image("armhf").read_bytes()
    (board_root / "usr/bin/env").write_text("#!/bin/busybox\n")
    code, output = run("linux", "--config", str(config), "--root", str(board_root), "--user", _service_user())
    assert code == 2 and "is not an ELF executable: give --arch" in output


def test_the_python_install_runs_the_agent_s_source_on_cpython(board_root, config):
    _, unit = _install(board_root, config, "--python")
    prefix = board_root / "opt" / "tcagent"
    assert (prefix / "tcagent" / "agent.py").exists() and not (prefix / "micropython").exists()
    assert _unit_values(unit, "ExecStart") == [f"{sys.executable} /opt/tcagent/main.py /opt/tcagent/config.json"]


def test_linux_install_refuses_a_user_that_does_not_exist(tmp_path, config):
    if os.geteuid() != 0:
        pytest.skip("only root hands the config to the service's user")
    code, output = run("linux", "--config", str(config), "--root", str(tmp_path / "root"), "--arch", "x86_64",
                       "--user", "nosuchuser")
    assert code == 2 and "no user 'nosuchuser' on the system under" in output


@pytest.mark.parametrize(("arch", "number"), [("armv6m", 4), ("xtensawin", 10)])
def test_the_board_tree_is_compiled_with_main_as_source(tmp_path, config, arch, number):
    tree = flash.agent_tree(tmp_path / "build", config, arch)
    assert (tree / "main.py").read_text().startswith('"""Boot entry')
    assert (tree / "tcagent" / "agent.mpy").exists() and not list((tree / "tcagent").rglob("*.py"))
    assert json.loads((tree / "config.json").read_text())["device_id"] == "dev-0007"
    # an .mpy names the arch of its machine code in its third byte (bits 2 up), 0 for bytecode only
    header_arch = {path.stem: path.read_bytes()[2] >> 2 for path in (tree / "tcagent" / "codec").glob("*.mpy")}
    assert header_arch["codes"] == header_arch["cose"] == header_arch["event"] == number
    assert header_arch["reasons"] == 0


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
