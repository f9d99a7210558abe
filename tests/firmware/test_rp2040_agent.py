"""The whole agent on a plain Raspberry Pi Pico in the RP2040 model: main.py, hal/board.py and hal/rp2.py on the
committed MicroPython v1.28.0 image, today's agent as .mpy (harness/pico_agent.py).

It boots with the watchdog on and no network (no radio), takes scans typed into the scanner UART at the board's
default pins (GP17, UART0 RX), journals them, signals them on the LED GPIOs and prints its status message; the
watchdog resets a board whose agent stopped; a board without config.json says so and waits.
"""

import json
import os

import cbor2
import pytest

from harness.pico_agent import PicoAgent, agent_files, pico_config, read_journal
from harness.pico_model import IMAGES, model_available
from tools.flash_pico import uf2_payload

KEY = bytes(range(32))
DEVICE = "pico-01"
SCANS = [b"81234567890123456789",  # 20-digit
         b"]d2010690123456789217261200102AB\x1d21XYZ123",  # GS1 DataMatrix, with a GS
         b"6901234567892"]  # a retail EAN: decoded, journalled, signalled invalid
WATCHDOG_MS = 8000


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    reason = model_available()
    if reason is not None:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI runs the RP2040 model test (tools/test.sh installs it): {reason}")
        pytest.skip(reason)
    return tmp_path_factory.mktemp("pico-agent")


@pytest.fixture(scope="module")
def run(work):
    """One boot of a fresh Pico: the scans, the status lines, then Ctrl-C (the agent stops, the watchdog does not)."""
    agent = PicoAgent(work, files=agent_files(work, pico_config(DEVICE, KEY, status_interval_s=2)))
    try:
        boot = agent.wait_boot()
        taken, lit = [], []
        for code, colour in zip(SCANS, ("green", "green", "red"), strict=True):
            sent_ns = agent.model.now_ns()
            agent.scan(code)
            taken.append(agent.wait_taken())
            lit.append(agent.wait_led(colour, sent_ns) - sent_ns)
        while agent.model.now_ns() < 1.25 * WATCHDOG_MS * 1e6:  # longer than the watchdog waits
            agent.read_line(60)  # the status every 2 s
        ran_ns = agent.model.now_ns()
        agent.model.write(b"\x03")  # Ctrl-C: the agent ends, nothing feeds the watchdog any more
        agent.model.read_until(b">>> ", 60)
        stopped_ns = agent.model.now_ns()
        agent.model.wait_watchdog(120)
        agent.model.save_flash(work / "after-watchdog.bin")
        yield {"agent": agent, "boot": boot, "taken": taken, "lit": lit, "ran_ns": ran_ns, "stopped_ns": stopped_ns}
    finally:
        agent.stop()


def test_it_boots_through_the_board_layer_with_the_watchdog_on_and_no_network(run):
    boot = run["boot"]
    assert (boot.device, boot.board, boot.network) == (DEVICE, "rp2", False)
    assert (boot.boot, boot.next_seq, boot.backlog, boot.watchdog_ms) == (1, 1, 0, WATCHDOG_MS)
    lines = run["agent"].lines
    assert b"log link: this board has no network (no Wi-Fi radio): scans stay in the journal" in lines
    assert not any(b"Traceback" in line or b"Error" in line for line in lines), lines


def test_scans_on_the_default_uart_pins_are_taken_in_order_and_signalled_on_the_leds(run):
    agent = run["agent"]
    assert run["taken"] == [1, 2, 3]
    assert agent.model.lost == []  # GP17 was in its UART function: no byte fell on a pin nothing listened to
    # green (GP25, the Pico's LED) for each valid scan taken, red for the retail EAN ("invalid" follows "taken"
    # at once and replaces its pattern), each within 200 ms of emulated time of the scan's first byte
    assert all(0 < delay_ns < 200e6 for delay_ns in run["lit"]), run["lit"]
    assert agent.led_rises("amber") >= 1  # "offline" at boot
    assert any(line.startswith(b"signal invalid seq=3 err=") for line in agent.lines)


def test_the_scans_are_in_the_journal_on_flash_as_signed_events(run, work):
    journal = read_journal((work / "after-watchdog.bin").read_bytes(), DEVICE, KEY)
    assert journal.bad == [] and journal.torn_tail == 0
    assert journal.seqs() == [1, 2, 3]
    assert [record.event.raw for record in journal.records] == SCANS
    assert [record.event.err == 0 for record in journal.records] == [True, True, False]
    assert journal.meta is not None and journal.meta[0] == 1  # boot 1


def test_the_status_message_is_produced(run):
    line = next(line for line in run["agent"].lines if line.startswith(b"log status "))
    status = cbor2.loads(bytes.fromhex(line.split()[-1].decode()))
    assert status[0] == 1 and status[1] is True  # version 1, every task runs
    assert status[4] == 3 and status[8] == 3 and status[6] == 0  # backlog, last seq, acked seq
    assert status[5] > 100_000  # free heap on the Pico, bytes
    assert status[12] & 2  # alarm: clock unsynced (no NTP without network)
    assert status[14][0] == 3 and status[14][1] == 1  # counters: scans, invalid


def test_the_watchdog_is_fed_while_the_agent_runs_and_resets_the_board_when_it_stops(run):
    model = run["agent"].model
    assert run["ran_ns"] > 1.2 * WATCHDOG_MS * 1e6  # the agent ran longer than the watchdog's time without a reset
    waited_ms = (model.watchdog_ns - run["stopped_ns"]) / 1e6
    assert 0 < waited_ms <= WATCHDOG_MS + 500  # fired within its time of the last feed


def test_after_the_watchdog_reset_it_boots_again_from_its_flash(run, work):
    agent = PicoAgent(work, flash=work / "after-watchdog.bin")
    try:
        boot = agent.wait_boot()
        assert (boot.boot, boot.next_seq, boot.backlog) == (2, 4, 3)
        agent.scan(b"81234567890123456780")
        assert agent.wait_taken() == 4
    finally:
        agent.stop()


def test_without_config_json_the_board_says_so_and_waits_blinking(work):
    agent = PicoAgent(work, files=agent_files(work, None))
    try:
        model = agent.model
        first = model.read_until(b"waiting for a valid config.json", 60)
        assert b"config error: config file config.json cannot be read" in first
        start_ns = model.now_ns()
        model.read_until(b"waiting for a valid config.json", 120)  # said again, 10 s later
        assert model.now_ns() - start_ns >= 5e9
        assert b"soft reboot" not in first + model.console()  # it waits: no soft-reboot loop
        assert agent.led_rises("green") >= 5  # GP25, the Pico's own LED, blinks
        model.write(b"\x03")  # a technician's Ctrl-C (mpremote does this): the REPL, to copy the config
        model.read_until(b">>> ", 60)
    finally:
        agent.stop()


def test_the_release_image_without_config_json_waits_too(work):
    release = IMAGES / "RPI_PICO-v1.28.0-release.uf2"
    assert b"waiting for a valid config.json" in uf2_payload(release), \
        "the committed release image froze an older main.py: rebuild it with firmware/images/build.sh"
    agent = PicoAgent(work, files={}, image=release)
    try:
        first = agent.model.read_until(b"waiting for a valid config.json", 60)
        assert b"config error: config file config.json cannot be read" in first and b"soft reboot" not in first
    finally:
        agent.stop()


def test_a_wrong_uart_pin_is_refused_at_boot_with_the_reason(work):
    """The board's own check (tcagent.pins) stops the agent before it opens the UART, and says why."""
    values = pico_config(DEVICE, KEY)
    values["uart"] = {"id": 1, "tx": 16, "rx": 17}  # GP16/GP17 are UART0's, not UART1's
    files = agent_files(work, None)
    files["config.json"] = json.dumps(values).encode()
    agent = PicoAgent(work, files=files)
    try:
        said = agent.model.read_until(b"waiting for a valid config.json", 60)
        assert b"config field 'uart.tx': GP16 is UART0 TX on the RP2040, not UART1 TX" in said
        assert b"log agent 0" not in said  # the agent did not start
    finally:
        agent.stop()
