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
    ({"mode": 7}, "'mode': expected 1-6"),
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
