"""trace-gateway: run the gateway service, and manage its device registry.

    trace-gateway run [--config gateway.toml]
    trace-gateway device add --device dev-0001 --key-file dev-0001.key --terminal T01 --institution P44030000001
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from gateway import config
from gateway.ingest import Ingest
from gateway.protocol import DEVICE_ID_PATTERN
from gateway.store import Device, SQLiteStore


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, for journald and log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": round(record.created, 3), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def run(settings: config.Settings) -> int:
    _logging(settings.log_level)
    store = SQLiteStore(settings.database)
    ingest = Ingest(settings.ingest, store)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda number, frame: stop.set())
    signal.signal(signal.SIGINT, lambda number, frame: stop.set())
    ingest.start()
    logging.getLogger("gateway").info("gateway running, database %s", settings.database)
    print("ready", flush=True)
    while not stop.wait(1.0):
        pass
    ingest.stop()
    store.close()
    logging.getLogger("gateway").info("gateway stopped: %s", dict(ingest.counts))
    return 0


def add_device(settings: config.Settings, options: argparse.Namespace) -> int:
    if not DEVICE_ID_PATTERN.fullmatch(options.device):
        raise SystemExit(f"device id {options.device!r} is not 1-32 of [A-Za-z0-9_-]")
    key = bytes.fromhex(Path(options.key_file).read_text().strip())
    if len(key) != 32:
        raise SystemExit(f"{options.key_file}: expected 32 bytes as 64 hex digits, got {len(key)} bytes")
    store = SQLiteStore(settings.database)
    store.add_device(Device(device=options.device, key=key, terminal=options.terminal,
                            institution=options.institution, institution_type=options.type, region=options.region))
    store.close()
    print(f"device {options.device} registered for terminal {options.terminal} of {options.institution}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trace-gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="TOML file (default: embedded defaults)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the service until SIGTERM")
    device = commands.add_parser("device", help="the device registry").add_subparsers(dest="action", required=True)
    add = device.add_parser("add", help="register a device, or update its key and placement")
    add.add_argument("--device", required=True)
    add.add_argument("--key-file", required=True, help="file holding the 32-byte key as 64 hex digits")
    add.add_argument("--terminal", required=True)
    add.add_argument("--institution", required=True)
    add.add_argument("--type", choices=["pharmacy", "hospital"], default="pharmacy")
    add.add_argument("--region", default="")
    options = parser.parse_args(argv)
    try:
        settings = config.load(options.config)
    except config.ConfigError as error:
        print(f"trace-gateway: {error}", file=sys.stderr)
        return 2
    if options.command == "run":
        return run(settings)
    return add_device(settings, options)


if __name__ == "__main__":
    sys.exit(main())
