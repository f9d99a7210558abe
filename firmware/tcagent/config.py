"""The device configuration: defaults in one place, the provisioned file on top, every field checked at boot.

The file is JSON (MicroPython's json), written by provisioning. `load` raises
ConfigError naming the field, what was expected and what was found. The defaults
are the unix port's; a board (rp2, esp32, esp32s3) lays its own over them and
has its pins checked against the chip (tcagent.pins, loaded on boards only).
The same check runs on the host when trace-provision writes the file.
"""

import json
import sys

from tcagent.codec.errors import AgentError

DEFAULTS = {  # type: dict
    "device_id": None,  # required: 1-32 of [A-Za-z0-9_-], also the MQTT user name
    "key_hex": None,  # required: the 32-byte COSE_Mac0 key, 64 hex digits
    "broker_host": None,  # required
    "broker_port": 1883,
    "mqtt_password": "",  # empty: connect without user and password
    "tls": False,
    "tls_ca": "",  # PEM/DER file of the CA that signed the broker's certificate (tls only)
    "wifi_ssid": "",  # boards only
    "wifi_password": "",
    "ppp": {"id": -1, "tx": -1, "rx": -1, "baud": 115200},  # rp2: the link over PPP on this UART; id -1: none
    "ntp_host": "",  # boards only; "": the broker host
    "clock_floor_s": 0,  # boards: the clock is never taken to be before this (Unix s); 0: the firmware's date
    "uart": {"port": "/dev/ttyACM0", "baud": 9600, "id": 0, "tx": 16, "rx": 17},  # unix: port; boards: id, pins
    "pins": {"buzzer": -1, "led_green": -1, "led_red": -1, "led_amber": -1},
    "suffix": "\r\n",  # any of these bytes ends a scan
    "line_timeout_ms": 200,
    "debounce_ms": 1500,
    "gs1_form": 0,  # 0 full element string, 1 GTIN + serial, 2 bracketed
    "mode": 1,  # operation at boot: 1 sale ... 6 dispense, 7 stock adjustment
    "data_dir": "data",
    "journal_capacity": 262144,
    "journal_segment": 16384,
    "keepalive_s": 30,
    "status_interval_s": 60,
    "ack_timeout_s": 15,
    "batch_max": 16,  # events per MQTT message when draining a backlog
    "batch_bytes": 4096,  # buffer for one batch message (protocol limit 16384); RAM, so keep it small
    "send_window": 64,  # events published and not yet acked by the gateway
    "backoff_max_s": 60,
    "watchdog_ms": 0,  # 0: off (unix port: systemd restarts it); boards: 8000 (pins.BOARD_DEFAULTS)
    "trust_host_clock": True,  # unix port: the host keeps time (NTP); boards: False until synced
    "utc_offset_min": 480,  # local time for expiry checks: China Standard Time, UTC+8
}
_REQUIRED = ("device_id", "key_hex", "broker_host")
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_HEX = "0123456789abcdefABCDEF"


class ConfigError(AgentError):
    """A missing, unknown or wrong field in the device configuration."""


def _expect(ok, name, expected, value):
    if not ok:
        raise ConfigError("config field %r: expected %s, got %r" % (name, expected, value))


def check(values, board=None):
    """Return a complete configuration: DEFAULTS, then `board`'s defaults, overlaid with `values`, all validated.

    `board`: "rp2", "esp32", "esp32s3", or anything else for the unix port; None: the board this runs on.
    """
    board = sys.platform if board is None else board  # "linux" on the unix port and CPython
    on_board = board in ("rp2", "esp32", "esp32s3")
    if on_board:
        from tcagent import pins  # the boards' defaults and pin tables: not loaded on the unix port

        board = pins.chip(board)
    config = {}  # type: dict
    for name in DEFAULTS:
        default = DEFAULTS[name]
        config[name] = dict(default) if isinstance(default, dict) else default
    overlay = pins.BOARD_DEFAULTS[board] if on_board else {}  # type: dict
    for name in overlay:
        if isinstance(config[name], dict):
            config[name].update(overlay[name])
        else:
            config[name] = overlay[name]
    for name in values:
        if name not in DEFAULTS:
            raise ConfigError("config field %r is unknown (a typo?)" % name)
        if isinstance(DEFAULTS[name], dict):
            _expect(isinstance(values[name], dict), name, "an object", values[name])
            for key in values[name]:
                _expect(key in DEFAULTS[name], name + "." + key, "one of %s" % sorted(DEFAULTS[name]), key)
            config[name].update(values[name])
        else:
            config[name] = values[name]
    for name in _REQUIRED:
        _expect(config[name], name, "a value (it has no default)", config[name])
    device = config["device_id"]
    _expect(isinstance(device, str) and 0 < len(device) <= 32 and all(c in _ID_CHARS for c in device),
            "device_id", "1-32 characters from [A-Za-z0-9_-]", device)
    key = config["key_hex"]
    _expect(isinstance(key, str) and len(key) == 64 and all(c in _HEX for c in key), "key_hex",
            "64 hex digits (32 bytes)", "<%d characters>" % len(key) if isinstance(key, str) else key)
    for name in DEFAULTS:
        default = DEFAULTS[name]
        if isinstance(default, bool):
            _expect(isinstance(config[name], bool), name, "true or false", config[name])
        elif isinstance(default, int):
            _expect(isinstance(config[name], int) and not isinstance(config[name], bool) and config[name] >= 0,
                    name, "a whole number >= 0", config[name])
        elif isinstance(default, str):
            _expect(isinstance(config[name], str), name, "text", config[name])
        elif isinstance(default, dict):
            for key in default:
                value = config[name][key]
                if isinstance(default[key], str):
                    _expect(isinstance(value, str), name + "." + key, "text", value)
                else:
                    _expect(isinstance(value, int) and not isinstance(value, bool) and value >= -1, name + "." + key,
                            "a whole number (-1: none)" if name == "pins" else "a whole number", value)
    _expect(1 <= config["mode"] <= 7, "mode", "1-7", config["mode"])
    _expect(config["gs1_form"] <= 2, "gs1_form", "0, 1 or 2", config["gs1_form"])
    _expect(0 < config["broker_port"] < 65536, "broker_port", "1-65535", config["broker_port"])
    _expect(config["suffix"] != "", "suffix", "at least one character", config["suffix"])
    _expect(config["journal_segment"] >= 4096, "journal_segment", ">= 4096", config["journal_segment"])
    _expect(config["journal_capacity"] >= 2 * config["journal_segment"], "journal_capacity",
            ">= 2 x journal_segment", config["journal_capacity"])
    _expect(1 <= config["batch_max"] <= 64, "batch_max", "1-64", config["batch_max"])
    _expect(1280 <= config["batch_bytes"] <= 16384, "batch_bytes", "1280-16384", config["batch_bytes"])
    _expect(config["keepalive_s"] >= 5, "keepalive_s", ">= 5", config["keepalive_s"])
    _expect(on_board or config["ppp"]["id"] == -1, "ppp.id", "-1 (PPP is for boards)", config["ppp"]["id"])
    if not config["ntp_host"]:
        config["ntp_host"] = config["broker_host"]
    if on_board:
        wrong = pins.problem(board, config)
        if wrong:
            field, _, reason = wrong.partition(": ")
            raise ConfigError("config field %r: %s" % (field, reason))
    return config


def load(path, board=None):
    """Read and check the configuration file at `path` (for `board`, None: this one)."""
    try:
        with open(path) as stream:
            values = json.load(stream)
    except OSError:
        raise ConfigError("config file %s cannot be read" % path)
    except ValueError as error:
        raise ConfigError("config file %s is not valid JSON: %s" % (path, error))
    if not isinstance(values, dict):
        raise ConfigError("config file %s must hold one JSON object" % path)
    return check(values, board)
