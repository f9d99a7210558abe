"""trace-flash pico: the release image for the board goes onto its BOOTSEL drive (or is named to drag there), then
config.json goes on with mpremote, here to a Pico in the RP2040 model behind a pty (tools/flash_pico.py)."""

import json
import os
import select
import subprocess
import sys
import threading
import time
import tty

import pytest

from harness.pico_agent import PicoAgent, read_file
from harness.pico_model import PicoModel, model_available
from tools import flash_pico

CONFIG = {"device_id": "dev-0007", "key_hex": "11" * 32, "broker_host": "192.0.2.1"}
INFO_UF2 = "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "devices" / "dev-0007" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(CONFIG))
    return path


def run(*arguments, timeout=300):
    done = subprocess.run([sys.executable, "-m", "tools.flash", "pico", *arguments], capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def test_the_release_image_of_each_board_is_offered_and_holds_the_agent():
    for board in flash_pico.BOARDS:
        image = flash_pico.release_image(board)
        assert image.name == f"{board}-v1.28.0-release.uf2" and flash_pico.has_agent(image)
    assert not flash_pico.has_agent(flash_pico.FIRMWARE / "images" / "RPI_PICO-v1.28.0-base.uf2")


def test_a_mounted_rpi_rp2_drive_is_found_in_the_mount_table(tmp_path):
    drive, other = tmp_path / "RPI RP2", tmp_path / "usb-stick"
    for folder in (drive, other):
        folder.mkdir()
    (drive / "INFO_UF2.TXT").write_text(INFO_UF2)
    (other / "INFO_UF2.TXT").write_text("UF2 Bootloader\nBoard-ID: SAMD21-Feather\n")
    mounts = tmp_path / "mounts"
    escaped = str(drive).replace(" ", "\\040")
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 {escaped} vfat rw 0 0\n/dev/sdc1 {other} vfat rw 0 0\n")
    assert flash_pico.bootsel_drives(mounts) == [drive]


def test_without_a_drive_it_names_the_file_to_drag_and_says_when_no_board_came(config):
    code, output = run("--config", str(config), "--wait-s", "1")
    assert code == 2, output
    assert "drag" in output and str(flash_pico.release_image("RPI_PICO")) in output  # no wifi_ssid: the plain Pico
    assert "no Pico's serial port appeared within 1 s" in output
    config.write_text(json.dumps({**CONFIG, "wifi_ssid": "Shop"}))
    code, output = run("--config", str(config), "--wait-s", "1")
    assert "RPI_PICO_W-v1.28.0-release.uf2" in output


class _Pty:
    """A serial port for mpremote whose other end is the model's USB CDC console."""

    def __init__(self):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.model = None
        self.closed = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        while not self.closed:
            ready, _, _ = select.select([self.master], [], [], 0.02)
            model = self.model
            if ready:
                data = os.read(self.master, 4096)
                if model is not None:
                    model.write(data)
            if model is not None:
                out = model.take_console()
                if out:
                    os.write(self.master, out)


def test_the_release_image_and_config_reach_a_pico_in_the_model(tmp_path, config):
    """The drive is a folder; the "boot ROM" is the test: once the UF2 is on the drive it boots a model from it,
    whose console is the pty given as --port. The flash the Pico is left with boots the frozen agent with the config."""
    reason = model_available()
    if reason is not None:
        if os.environ.get("CI"):
            raise RuntimeError(reason)
        pytest.skip(reason)
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text(INFO_UF2)
    port = _Pty()
    serial_port = tmp_path / "ttyACM0"  # appears once the board's USB is up, as udev makes /dev/ttyACM0
    image = drive / "RPI_PICO-v1.28.0-release.uf2"
    flashing = subprocess.Popen([sys.executable, "-m", "tools.flash", "pico", "--config", str(config), "--mount",
                                 str(drive), "--port", str(serial_port)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not image.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # _copy_image writes and syncs in one go
        port.model = PicoModel(uf2=image)
        port.model.wait_connected()
        serial_port.symlink_to(port.path)
        output, _ = flashing.communicate(timeout=300)
        assert flashing.returncode == 0, output
        assert "copied to" in output and "mpremote fs cp" in output
        port.model.wait_watchdog(60)  # machine.reset() on the RP2040 is a watchdog reset: the model stops there
        port.model.save_flash(tmp_path / "flash.bin")
    finally:
        port.closed = True
        flashing.kill()
        if port.model is not None:
            port.model.stop()
    assert json.loads(read_file((tmp_path / "flash.bin").read_bytes(), "config.json")) == CONFIG
    agent = PicoAgent(tmp_path, flash=tmp_path / "flash.bin")
    try:
        boot = agent.wait_boot(60)
        assert (boot.device, boot.board, boot.network, boot.watchdog_ms) == ("dev-0007", "rp2", False, 8000)
    finally:
        agent.stop()
