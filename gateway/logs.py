"""One log format for both gateway processes: a JSON object per line, for journald and log shippers.

Every line has `time` (ISO 8601, UTC, milliseconds), `level`, `logger` and `message`; a record logged with
`extra={"device": ...}` or `extra={"request": ...}` carries that field too; a traceback goes in `exception`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "configure"]

_FIELDS = ("device", "request", "terminal", "process")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in _FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str | int) -> None:
    """JSON lines on stderr at `level`, replacing whatever logging was set up before."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
