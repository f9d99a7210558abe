"""The TOML configuration: embedded defaults, every key known, and a clear error per bad key."""

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from gateway import config

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_no_file():
    settings = config.load(None)
    assert settings.store_location == str(Path("data/gateway.sqlite3"))
    assert (settings.ingest.broker_port, settings.api.port, settings.rules.timezone) == (1883, 8080, "Asia/Shanghai")


def test_a_full_file(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('data_dir = "/var/lib/x"\nlog_level = "debug"\n[ingest]\nbroker_port = 1884\nshared_group = "g"\n'
                    '[api]\nport = 9000\ntoken = "r"\n[rules]\nstock_margin = 3\ntimezone = "Asia/Urumqi"\n')
    settings = config.load(path)
    assert (settings.data_dir, settings.log_level, settings.ingest.shared_group) == (Path("/var/lib/x"), "DEBUG", "g")
    assert (settings.api.port, settings.api.token, settings.rules.stock_margin) == (9000, "r", 3)


@pytest.mark.parametrize(("text", "message"), [
    ("[ingest]\nbroker_prot = 1\n", "ingest.broker_prot: unknown key"),
    ("[ingest]\nbroker_port = '1883'\n", "expected int"),
    ("[ingest]\nbroker_port = 70000\n", "0-65535"),
    ("[api]\nenabled = 1\n", "expected bool"),
    ("[rules]\nstock_margin = -1\n", "must not be negative"),
    ("[rules]\ntimezone = 'Mars/Olympus'\n", "unknown time zone"),
    ("[rules]\nsweep_interval_s = 0\n", "at least 1"),
    ("log_level = 'LOUD'\n", "log_level"),
    ("colour = 'red'\n", "colour: unknown key"),
    ("ingest = 3\n", "must be a table"),
    ("[ingest\n", "not valid TOML"),
])
def test_bad_files_name_the_key(tmp_path, text, message):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        config.load(path)
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")


def test_the_client_id_is_the_broker_user_name(tmp_path):
    """The shipped broker config binds client ids to user names: the gateway's must be its user name."""
    path = tmp_path / "gateway.toml"
    path.write_text('[ingest]\nusername = "trace-gateway-2"\n')
    assert config.load(path).ingest.client_id == "trace-gateway-2"
    path.write_text('[ingest]\nusername = "trace-gateway-2"\nclient_id = "trace-gateway-2"\n')
    assert config.load(path).ingest.client_id == "trace-gateway-2"
    path.write_text('[ingest]\nclient_id = "gw-x"\n')  # anonymous: only for a broker without users
    assert config.load(path).ingest.client_id == "gw-x"
    path.write_text('[ingest]\nusername = "trace-gateway"\nclient_id = "trace-gateway-1"\n')
    with pytest.raises(config.ConfigError, match="ingest.client_id: must equal ingest.username 'trace-gateway'"):
        config.load(path)


def test_every_key_is_documented_with_its_default():
    operations = (ROOT / "docs" / "operations.md").read_text()
    example = (ROOT / "gateway" / "gateway.toml.example").read_text()
    for section, cls in config.SECTIONS.items():
        for item in fields(cls):
            assert f"`{section}.{item.name}`" in operations, f"{section}.{item.name} missing in docs/operations.md"
            assert f"{item.name} = " in example, f"{section}.{item.name} missing in gateway.toml.example"
    shipped = config.load(ROOT / "gateway" / "gateway.toml.example")
    assert shipped == config.Settings(data_dir=Path("/var/lib/trace-gateway"))


def test_the_systemd_unit_verifies(tmp_path):
    import shutil

    analyzer = shutil.which("systemd-analyze")
    if analyzer is None:
        pytest.skip("systemd-analyze not installed")
    executable = shutil.which("trace-gateway") or sys.executable
    unit = (ROOT / "gateway" / "trace-gateway.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "Restart=on-failure" in unit
    copy = tmp_path / "trace-gateway.service"
    copy.write_text(unit.replace("/opt/trace-gateway/venv/bin/trace-gateway", executable))
    done = subprocess.run([analyzer, "verify", str(copy)], capture_output=True, text=True)
    assert done.returncode == 0 and "trace-gateway.service" not in done.stderr, done.stderr
    rated = subprocess.run([analyzer, "security", "--offline=yes", "--threshold=20", str(copy)], capture_output=True,
                           text=True)  # exposure at most 2.0 of 10 (the unit as shipped rated 8.5)
    assert rated.returncode == 0, rated.stdout[-600:] + rated.stderr
