"""sd_notify without libsystemd: READY=1, STOPPING=1, STATUS= and watchdog pings over $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_interval_s"]


def notify(state: str) -> bool:
    """Send `state` to the service manager; False when not run by one (no NOTIFY_SOCKET)."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        try:
            sender.sendto(state.encode(), address)
        except OSError:
            return False
    return True


def watchdog_interval_s() -> float:
    """How often to ping: half of WatchdogSec (from $WATCHDOG_USEC), or 0 when no watchdog is set."""
    text = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not text.isdigit() or (pid and pid != str(os.getpid())):
        return 0.0
    return int(text) / 2_000_000
