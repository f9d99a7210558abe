"""One JSON log format in both gateway processes."""

import json
import logging
import subprocess
import sys
from datetime import datetime

from gateway.logs import JsonFormatter


def test_a_line_has_iso_time_level_logger_message_and_the_fields_given():
    record = logging.LogRecord("gateway.ingest", logging.WARNING, __file__, 1, "rejected %s", ("bad_mac",), None)
    record.device = "dev-0001"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["logger"] == "gateway.ingest"
    assert entry["message"] == "rejected bad_mac" and entry["device"] == "dev-0001"
    assert datetime.fromisoformat(entry["time"]).utcoffset().total_seconds() == 0


def test_the_mqtt_child_writes_the_parent_s_json_lines(broker):
    """The child says at INFO that it connected and subscribed: that line, like every other, must be JSON."""
    script = (
        "import logging, time\n"
        "from gateway.ingest.mqtt_link import MqttChild, LinkSettings\n"
        f"settings = LinkSettings('127.0.0.1', {broker.port}, 'log-test', '', '', ('tc/v1/+/ev',), logging.INFO)\n"
        "link = MqttChild(settings, lambda batch: None)\n"
        "link.start(); link.wait_connected(10); link.stop()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert any("subscribed" in line for line in lines), done.stderr
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry), line
