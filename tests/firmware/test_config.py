"""Device configuration on both interpreters: defaults, and a clear error naming the field."""

import pytest

from conftest import FirmwareError

GOOD = {"device_id": "dev-0001", "key_hex": "ab" * 32, "broker_host": "10.0.0.2"}


def test_defaults_fill_in(fw):
    checked = fw.call("config_check", {**GOOD, "uart": {"port": "/dev/ttyUSB0"}})
    assert checked["broker_port"] == 1883 and checked["uart"]["port"] == "/dev/ttyUSB0"
    assert checked["uart"]["baud"] == 9600


@pytest.mark.parametrize("change, words", [
    ({"device_id": None}, "'device_id': expected a value"),
    ({"key_hex": "ab" * 31}, "'key_hex': expected 64 hex digits"),
    ({"key_hex": "zz" * 32}, "'key_hex': expected 64 hex digits"),
    ({"device_id": "dev/1"}, "'device_id': expected 1-32 characters"),
    ({"broker_port": "1883"}, "'broker_port': expected a whole number"),
    ({"broker_port": 70000}, "'broker_port': expected 1-65535"),
    ({"tls": "yes"}, "'tls': expected true or false"),
    ({"brokr_host": "x"}, "'brokr_host' is unknown"),
    ({"uart": {"prot": "/dev/x"}}, "'uart.prot'"),
    ({"mode": 8}, "'mode': expected 1-7"),
    ({"journal_capacity": 1000}, "'journal_capacity'"),
    ({"suffix": ""}, "'suffix'"),
])
def test_wrong_fields_are_named(fw, change, words):
    values = {**GOOD, **change}
    values = {key: value for key, value in values.items() if value is not None}
    with pytest.raises(FirmwareError, match=words.replace("(", r"\(")) as error:
        fw.call("config_check", values)
    assert error.value.name == "ConfigError"
    assert "ab" * 31 not in str(error.value)  # a key is never echoed


def test_the_agent_refuses_to_start_on_a_bad_file(tmp_path):
    import subprocess

    from tools.paths import FIRMWARE, micropython, micropython_env

    (tmp_path / "config.json").write_text('{"device_id": "d1", "broker_host": "x"')
    result = subprocess.run([micropython(), str(FIRMWARE / "main.py"), str(tmp_path / "config.json")],
                            env=micropython_env(FIRMWARE), capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "config error" in result.stdout and "not valid JSON" in result.stdout


@pytest.mark.parametrize("board, uart, watchdog", [
    ("rp2", {"id": 0, "tx": 16, "rx": 17}, 8000),  # GP16/GP17 are UART0's on the RP2040
    ("esp32", {"id": 1, "tx": 17, "rx": 16}, 8000),
    ("esp32s3", {"id": 1, "tx": 17, "rx": 18}, 8000),
    ("unix", {"id": 0, "tx": 16, "rx": 17}, 0),  # no hardware watchdog: the service manager restarts it
])
def test_each_board_has_valid_defaults_and_a_watchdog(fw, board, uart, watchdog):
    checked = fw.call("config_check", GOOD, board)
    assert {key: checked["uart"][key] for key in uart} == uart and checked["watchdog_ms"] == watchdog
    assert checked["ntp_host"] == "10.0.0.2"  # the broker host unless the technician sets one


@pytest.mark.parametrize("board, change, words", [
    ("rp2", {"uart": {"id": 1, "tx": 17, "rx": 16}}, "'uart.tx': GP17 is UART0 RX on the RP2040, not UART1 TX; "
                                                     "UART1 TX is on GP4, GP8, GP20"),
    ("rp2", {"uart": {"id": 0, "tx": 16, "rx": 16}}, "'uart.rx': GP16 is UART0 TX on the RP2040, not UART0 RX"),
    ("rp2", {"uart": {"id": 1, "tx": 24, "rx": 25}}, "'uart.tx': GP24 is not on the Pico's header"),
    ("rp2", {"uart": {"id": 2}}, "'uart.id': the RP2040 has UART0 and UART1, got 2"),
    ("rp2", {"uart": {"tx": 40}}, "'uart.tx': GP40 does not exist"),
    ("rp2", {"pins": {"led_green": 17}}, "'pins.led_green': GPIO17 is already uart.rx"),
    ("rp2", {"watchdog_ms": 9000}, "'watchdog_ms': expected 0 \\(off\\) or 2000-8388 on rp2"),
    ("rp2", {"uart": {"tx": "16"}}, "'uart.tx': expected a whole number"),
    ("esp32", {"uart": {"id": 0}}, "'uart.id': expected 1 or 2 on the ESP32 \\(UART0 is the REPL console\\)"),
    ("esp32", {"uart": {"tx": 35}}, "'uart.tx': GPIO35 is input-only"),
    ("esp32", {"uart": {"rx": 7}}, "'uart.rx': GPIO7 is wired to the SPI flash"),
    ("esp32", {"pins": {"buzzer": 36}}, "'pins.buzzer': GPIO36 is input-only"),
    ("esp32s3", {"uart": {"tx": 30}}, "'uart.tx': GPIO30 is wired to the flash or PSRAM"),
    ("rp2", {"ppp": {"id": 1, "tx": 16, "rx": 5}}, "'ppp.tx': GP16 is UART0 TX on the RP2040, not UART1 TX"),
    ("rp2", {"ppp": {"id": 0, "tx": 0, "rx": 1}}, "'ppp.id': UART0 is the scan engine's"),
    ("rp2", {"ppp": {"id": 1, "tx": 4, "rx": 5}, "pins": {"buzzer": 4}}, "'pins.buzzer': GPIO4 is already ppp.tx"),
    ("rp2", {"ppp": {"id": 1, "tx": 4, "rx": 5, "baud": 0}}, "'ppp.baud': expected a baud rate"),
    ("esp32", {"ppp": {"id": 2, "tx": 4, "rx": 5}}, "'ppp.id': a PPP link is built for the Pico"),
    ("unix", {"ppp": {"id": 1, "tx": 4, "rx": 5}}, "'ppp.id': expected -1 \\(PPP is for boards\\)"),
])
def test_pins_the_chip_cannot_route_are_refused_by_name(fw, board, change, words):
    with pytest.raises(FirmwareError, match=words) as error:
        fw.call("config_check", {**GOOD, **change}, board)
    assert error.value.name == "ConfigError"


def test_a_pico_takes_its_link_over_ppp_on_the_other_uart(fw):
    checked = fw.call("config_check", {**GOOD, "ppp": {"id": 1, "tx": 4, "rx": 5}}, "rp2")
    assert checked["ppp"] == {"id": 1, "tx": 4, "rx": 5, "baud": 115200} and checked["uart"]["id"] == 0


def test_input_only_pins_may_receive(fw):
    checked = fw.call("config_check", {**GOOD, "uart": {"tx": 4, "rx": 35}}, "esp32")
    assert checked["uart"]["rx"] == 35
