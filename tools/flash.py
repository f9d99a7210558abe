"""trace-flash: put MicroPython and the scanner agent on a device, one command per board.

    trace-flash esp32 --port /dev/ttyUSB0 --firmware ESP32_GENERIC-v1.24.1.bin --config devices/dev-0007/config.json
    trace-flash pico  --config devices/dev-0007/config.json [--board RPI_PICO_W] [--mount /media/$USER/RPI-RP2]
    trace-flash linux --config devices/dev-0007/config.json [--arch aarch64|armhf|x86_64] [--root /]
                      [--prefix /opt/tcagent] [--user scanner] [--python]
    trace-flash monitor [--port /dev/ttyUSB0]                   # the device's log, until Ctrl-C

- esp32 (and S3 with --chip esp32s3): esptool erases the flash and writes the MicroPython image; then the agent,
  compiled with mpy-cross, and its config are copied with mpremote, and the board is reset.
- pico (Pico, Pico W): the release image for the board (firmware/images/, the agent frozen in) is copied to the
  board's BOOTSEL drive when one is mounted (hold BOOTSEL while plugging in), or named for the technician to drag
  there; once the board's serial port appears, config.json goes on with mpremote (tools/flash_pico.py).
- linux: MicroPython's unix port for the board's architecture (firmware/images, the agent frozen in; the
  architecture from `uname -m`, or from the executables of the system under --root, or --arch) is installed
  under --prefix with its config (owner-only, owned by --user), and a systemd unit `tcagent.service` runs it
  and restarts it after a crash or a reboot command. --python installs the agent's source for CPython instead.

--skip-firmware copies only the agent and config (an ESP32 that already runs MicroPython), or only the config
(a Pico that already runs the release image). Without --port the
board is found by its USB vendor and product id (a Pico running MicroPython, or the USB-serial bridge of an ESP32
board); with several attached it lists them and asks for --port. esptool's and mpremote's own progress shows
as they work. Errors say what to do about a missing port, a busy one, or a device that is not answering as a
MicroPython board.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tools import linux_images
from tools.errors import ToolError
from tools.paths import ESP32_ARCH, FIRMWARE, compile_firmware, require_checkout

__all__ = ["FlashError", "agent_tree", "check_config", "checked_port", "copy_agent", "install_linux", "main",
           "mpremote", "probe_repl"]

_UNIT = """[Unit]
Description=Drug traceability-code scanner agent ({device})
After=network-online.target
Wants=network-online.target
# An agent that keeps exiting at once (other than for a config error, see RestartPreventExitStatus) is restarted
# 5 times, then systemd stops and says so in the journal ("start request repeated too quickly").
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Type=simple
WorkingDirectory={prefix}
ExecStart={exec_start}
{environment}
# The journal lives here, owned by the service's user (systemd makes it)
StateDirectory=tcagent
# exit status 75 is the agent's reboot command; anything else a crash: both come back. Status 2 is a config
# error ("config error: ..." in the journal): restarting cannot mend it, so the service stays failed.
Restart=always
RestartPreventExitStatus=2
RestartSec=2
User={user}

[Install]
WantedBy=multi-user.target
"""
STATE_DIR = "/var/lib/tcagent"
"""The agent's journal on a Linux board (the unit's StateDirectory=)."""


_OUTPUT_KEPT = 64 * 1024
"""What is kept of a tool's output for its error message and its result."""


class FlashError(ToolError):
    """What the technician must fix, in words."""


BOARDS = {
    (0x2E8A, 0x0005): "Raspberry Pi Pico running MicroPython",
    (0x303A, 0x1001): "Espressif USB serial/JTAG (ESP32-S3, -C3)",
    (0x303A, 0x4001): "Espressif USB (MicroPython on ESP32-S2/S3)",
    (0x10C4, 0xEA60): "Silicon Labs CP210x (ESP32 board)",
    (0x1A86, 0x7523): "WCH CH340 (ESP32 board)",
    (0x1A86, 0x55D4): "WCH CH9102 (ESP32 board)",
    (0x0403, 0x6001): "FTDI FT232R (ESP32 board)",
    (0x0403, 0x6015): "FTDI FT231X (ESP32 board)",
}
"""USB (vendor id, product id) -> what a scanner board shows up as on its serial port."""


def boards_attached() -> list[tuple[str, str]]:
    """(serial port, what it is) of every attached board BOARDS knows."""
    from serial.tools.list_ports import comports

    return sorted((port.device, BOARDS[(port.vid, port.pid)]) for port in comports()
                  if (port.vid, port.pid) in BOARDS)


def detect_port() -> str:
    """The one attached board's serial port; FlashError when there is none, or more than one to choose from."""
    found = boards_attached()
    if len(found) == 1:
        print(f"using {found[0][0]}: {found[0][1]}", flush=True)
        return found[0][0]
    if not found:
        raise FlashError("no board found on USB (a Pico running MicroPython, or an ESP32 board's USB-serial "
                         "bridge): plug it in with a data cable, or give --port")
    listed = "; ".join(f"{port} ({what})" for port, what in found)
    raise FlashError(f"{len(found)} boards attached: {listed}; choose one with --port")


def checked_port(port: str) -> str:
    port = port or detect_port()
    if not Path(port).exists():
        raise FlashError(f"{port} does not exist: is the board plugged in, and is it this port? "
                         "(ls /dev/ttyUSB* /dev/ttyACM*)")
    try:
        import serial

        with serial.Serial(port, 115200, timeout=0.2, exclusive=True):
            pass
    except ImportError:
        raise FlashError("pyserial is missing: pip install '.[technician]'") from None
    except Exception as error:  # pyserial raises SerialException (and OSError subclasses) with the reason
        text = str(error)
        if "busy" in text.lower() or "lock" in text.lower():
            raise FlashError(f"{port} is busy: close the serial monitor (screen, minicom, Thonny, another "
                             f"mpremote) that holds it ({text})") from None
        raise FlashError(f"{port} cannot be opened: {text} (are you in the dialout group?)") from None
    return port


def _run(command: list[str], what: str, *, timeout: int = 300) -> str:
    """Run a tool with its own output (esptool's and mpremote's progress) shown as it comes; its output, or
    FlashError with the end of it."""
    tool = shutil.which(command[0])
    if tool is None:
        raise FlashError(f"{command[0]} not found: pip install '.[technician]' (esptool, mpremote)")
    print(f"-- {what}", flush=True)
    process = subprocess.Popen([tool, *command[1:]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    output = bytearray()
    try:
        while chunk := os.read(process.stdout.fileno(), 4096):  # progress redraws with \r: chunks, not lines
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            output += chunk
            del output[:-_OUTPUT_KEPT]
        process.wait()
    finally:
        timer.cancel()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise FlashError(f"{what} failed" + (f" after {timeout} s" if process.returncode < 0 else "") +
                         f": {text.strip()[-600:]}")
    return text


def mpremote(port: str, *arguments: str) -> str:
    try:
        return _run(["mpremote", "connect", port, *arguments], f"mpremote {' '.join(arguments)}", timeout=120)
    except FlashError as error:
        if "raw repl" in str(error).lower() or "could not enter" in str(error).lower():
            raise FlashError(f"{port} does not answer as a MicroPython board (no raw REPL): flash MicroPython "
                             "first (without --skip-firmware), or check that this is the board's port") from None
        if "after 120 s" in str(error):
            raise FlashError(f"{port} did not answer within 120 s: not a MicroPython board, or busy") from None
        raise


def agent_tree(target: Path, config: Path, arch: str) -> Path:
    """The files a board gets: tcagent compiled to .mpy (hot functions as machine code for `arch`, an mpy-cross
    -march name), main.py as source (boards run it at boot), config.json."""
    compile_firmware(target / "compiled", arch)
    tree = target / "board"
    shutil.copytree(target / "compiled" / "tcagent", tree / "tcagent")
    shutil.copyfile(FIRMWARE / "main.py", tree / "main.py")
    shutil.copyfile(config, tree / "config.json")
    return tree


def check_config(path: Path) -> dict[str, object]:
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise FlashError(f"{path}: not a readable JSON config ({error}); make one with trace-provision") from None
    for key in ("device_id", "key_hex", "broker_host"):
        if not values.get(key):
            raise FlashError(f"{path}: {key} is missing; make the config with trace-provision")
    return dict(values)


def probe_repl(port: str, timeout_s: float = 4.0) -> None:
    """Interrupt whatever runs and ask for the raw REPL; a MicroPython board answers within a second or two.

    Asked again every half second: a Ctrl-C that lands while the board boots, or between two runs of a main.py
    that soft-reboots in a loop, is lost."""
    import serial

    with serial.Serial(port, 115200, timeout=0.1) as console:
        seen = b""
        deadline = time.monotonic() + timeout_s
        asked = 0.0
        while time.monotonic() < deadline and b"raw REPL" not in seen:
            if time.monotonic() - asked >= 0.5:
                console.write(b"\r\x03\x03\x01")
                asked = time.monotonic()
            seen = (seen + console.read(256))[-4096:]
        console.write(b"\x02")  # back to the friendly REPL
    if b"raw REPL" not in seen:
        raise FlashError(f"{port} does not answer as a MicroPython board (no raw REPL within {timeout_s:.0f} s): "
                         "flash MicroPython first (without --skip-firmware), or check that this is the board's port")


def copy_agent(port: str, config: Path, arch: str) -> None:
    probe_repl(port)
    with tempfile.TemporaryDirectory() as scratch:
        tree = agent_tree(Path(scratch), config, arch)
        mpremote(port, "fs", "cp", "-r", str(tree / "tcagent"), ":")
        mpremote(port, "fs", "cp", str(tree / "main.py"), ":main.py")
        mpremote(port, "fs", "cp", str(tree / "config.json"), ":config.json")
        if (config.parent / "ca.crt").exists():
            mpremote(port, "fs", "cp", str(config.parent / "ca.crt"), ":ca.crt")
    mpremote(port, "reset")


def flash_esp32(options: argparse.Namespace) -> None:
    port = checked_port(options.port)
    check_config(options.config)
    if not options.skip_firmware:
        image = Path(options.firmware or "")
        if not image.is_file():
            raise FlashError("--firmware must be the MicroPython .bin for the board (micropython.org/download)")
        offset = "0x1000" if options.chip == "esp32" else "0x0"
        _run(["esptool", "--chip", options.chip, "--port", port, "erase-flash"], "erasing the flash")
        _run(["esptool", "--chip", options.chip, "--port", port, "--baud", "460800", "write-flash", "-z", offset,
              str(image)], "writing MicroPython")
        time.sleep(2)
    copy_agent(port, options.config, ESP32_ARCH)


def board_arch(root: Path) -> str:
    """The architecture of the system under `root`: `uname -m` for this machine's own, else that of its
    executables (an SD card's root file system mounted on a laptop)."""
    if root.resolve() == Path("/"):
        return linux_images.arch_of_machine(os.uname().machine)
    return linux_images.arch_of_elf(root / "usr" / "bin" / "env")


def install_linux(config: Path, *, root: Path, prefix: str, use_python: bool, user: str, arch: str = "") -> Path:
    """Install the agent under root/prefix and its systemd unit; the unit's path. On MicroPython: the unix-port
    executable for `arch` with the agent frozen in, nothing else of the agent; on CPython: the agent's source.
    The installed config keeps the journal in STATE_DIR unless it names a data_dir, and belongs to `user`."""
    values = check_config(config)
    owner = _account(root, user) if os.geteuid() == 0 else None  # only root can give the config away, and must
    target = root / prefix.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    for stale in ("tcagent", "main.py", "micropython"):  # of an earlier install of the other kind
        if (target / stale).is_dir():
            shutil.rmtree(target / stale)
        elif (target / stale).exists():
            (target / stale).unlink()
    if use_python:
        shutil.copytree(FIRMWARE / "tcagent", target / "tcagent", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copyfile(FIRMWARE / "main.py", target / "main.py")
        exec_start = f"{sys.executable} {prefix}/main.py {prefix}/config.json"
        environment = f"Environment=PYTHONPATH={prefix}"
    else:
        shutil.copyfile(linux_images.image(arch), target / "micropython")
        os.chmod(target / "micropython", 0o755)
        exec_start = f"{prefix}/micropython -m main {prefix}/config.json"
        # only the frozen modules: the agent and main.py frozen with this executable, asyncio and the others
        environment = "Environment=MICROPYPATH=.frozen"
    installed = {"data_dir": STATE_DIR, **values}
    (target / "config.json").write_text(json.dumps(installed, indent=1))
    os.chmod(target / "config.json", 0o600)
    if owner is not None:
        os.chown(target / "config.json", *owner)  # the service's user reads its owner-only config
    if (config.parent / "ca.crt").exists():
        shutil.copyfile(config.parent / "ca.crt", target / "ca.crt")
    unit = root / "etc" / "systemd" / "system" / "tcagent.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(_UNIT.format(device=values["device_id"], prefix=prefix, exec_start=exec_start,
                                 environment=environment, user=user))
    return unit


def _account(root: Path, user: str) -> tuple[int, int]:
    """(uid, gid) of `user` on the system under `root` (its own /etc/passwd when that is not this machine's)."""
    if root.resolve() == Path("/"):
        import pwd

        try:
            account = pwd.getpwnam(user)
        except KeyError:
            pass
        else:
            return account.pw_uid, account.pw_gid
    else:
        try:
            for line in (root / "etc" / "passwd").read_text().splitlines():
                fields = line.split(":")
                if len(fields) >= 4 and fields[0] == user:
                    return int(fields[2]), int(fields[3])
        except (OSError, ValueError):
            pass
    raise FlashError(f"no user {user!r} on the system under {root}: create it (useradd --system {user}) or "
                     "choose another with --user")


def flash_linux(options: argparse.Namespace) -> None:
    arch = ""
    if not options.python:
        arch = options.arch or board_arch(options.root)
        print(f"MicroPython v1.28.0 for {arch}" + ("" if options.arch else " (detected)"), flush=True)
    unit = install_linux(options.config, root=options.root, prefix=options.prefix, use_python=options.python,
                         user=options.user, arch=arch)
    print(f"installed {options.root / options.prefix.lstrip('/')} and {unit}")
    if options.root == Path("/") and shutil.which("systemctl"):
        _run(["systemctl", "daemon-reload"], "systemctl daemon-reload")
        _run(["systemctl", "enable", "--now", "tcagent"], "enabling tcagent.service")
    elif options.root != Path("/"):
        print(f"to start it at the board's boot: sudo systemctl --root={options.root} enable tcagent")


def monitor(options: argparse.Namespace) -> None:
    """Print what the device writes on its serial port (the agent's log lines) until Ctrl-C or --seconds."""
    import serial

    port = checked_port(options.port)
    print(f"-- {port} at 115200 baud; Ctrl-C ends", flush=True)
    deadline = time.monotonic() + options.seconds if options.seconds else None
    with serial.Serial(port, 115200, timeout=0.2) as console:
        try:
            while deadline is None or time.monotonic() < deadline:
                data = console.read(256)
                if data:
                    sys.stdout.write(data.decode(errors="replace"))
                    sys.stdout.flush()
        except KeyboardInterrupt:
            pass


def command_line() -> argparse.ArgumentParser:
    """trace-flash's options (trace-provision --flash checks them before it enrols a device)."""
    parser = argparse.ArgumentParser(prog="trace-flash", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    boards = parser.add_subparsers(dest="board", required=True)
    for name in ("esp32", "pico"):
        board = boards.add_parser(name)
        board.add_argument("--port", default="", help="the board's serial port (default: the one board found)")
        board.add_argument("--config", type=Path, required=True)
        board.add_argument("--skip-firmware", action="store_true", help="MicroPython is already on the board")
        if name == "esp32":
            board.add_argument("--firmware", help="the MicroPython image for the board (.bin)")
            board.add_argument("--chip", default="esp32", choices=["esp32", "esp32s3"])
        else:
            board.add_argument("--board", dest="pico_board", choices=["RPI_PICO", "RPI_PICO_W"],
                               help="which release image (default: RPI_PICO_W when the config has a wifi_ssid)")
            board.add_argument("--firmware", help="another .uf2 instead of the release image (plain MicroPython: "
                               "the agent is copied too)")
            board.add_argument("--mount", help="mount point of the BOOTSEL drive (default: the RPI-RP2 drive found)")
            board.add_argument("--wait-s", type=float, default=120,
                               help="how long to wait for the board's serial port after the image (default 120)")
    linux = boards.add_parser("linux")
    linux.add_argument("--config", type=Path, required=True)
    linux.add_argument("--root", type=Path, default=Path("/"), help="install into this tree (default: the system)")
    linux.add_argument("--prefix", default="/opt/tcagent")
    linux.add_argument("--python", action="store_true", help="run on CPython (boards without a unix-port "
                       "executable here, such as the ARMv6 Pi 1 and Zero)")
    linux.add_argument("--arch", choices=linux_images.ARCHES, help="the board's architecture (default: detected "
                       "from uname -m, or from the executables under --root)")
    linux.add_argument("--user", default="root", help="the service's user (needs the scanner's serial port)")
    watch = boards.add_parser("monitor", help="print the device's log from its serial port until Ctrl-C")
    watch.add_argument("--port", default="", help="the board's serial port (default: the one board found)")
    watch.add_argument("--seconds", type=float, default=0, help="stop after this long (default: at Ctrl-C)")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = command_line().parse_args(argv)
    from tools import flash_pico  # it uses this module's helpers

    try:
        if options.board != "monitor":
            require_checkout()
        {"esp32": flash_esp32, "pico": flash_pico.flash_pico, "linux": flash_linux,
         "monitor": monitor}[options.board](options)
    except ToolError as error:
        print(f"trace-flash: {error}", file=sys.stderr)
        return 2
    if options.board != "monitor":
        print(f"done: {options.board} ready with {options.config}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
