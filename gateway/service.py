"""The running gateway: store, ingest, API, the time-based rules and the systemd watchdog, until SIGTERM."""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway import pipeline, systemd
from gateway.api import ApiServer
from gateway.config import Settings
from gateway.forwarder import Forwarder
from gateway.ingest import Ingest
from gateway.metrics import Metrics
from gateway.store import Store, open_store

__all__ = ["run", "token_file", "ServiceError"]

log = logging.getLogger("gateway")


class ServiceError(RuntimeError):
    """The service cannot start: what, where and what to do, in one line."""


def token_file(path: Path) -> str:
    """The token kept in `path`, made (owner-only) on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    log.info("made API token %s", path)
    return token


class _Quota(logging.Filter):
    """At most `per_window` records of one message template every `window_s`: a loop that fails the same way
    (asyncio's accept when descriptors run out, say) must not fill the disk with the same traceback."""

    def __init__(self, per_window: int = 5, window_s: float = 10.0) -> None:
        super().__init__()
        self.per_window, self.window_s = per_window, window_s
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        started, count = self._seen.get(str(record.msg), (now, 0))
        if now - started >= self.window_s:
            started, count = now, 0
        self._seen[str(record.msg)] = (started, count + 1)
        return count < self.per_window


def _open_files_to_the_hard_limit() -> None:
    """Raise the soft limit on open descriptors to the hard one: every API client holds one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as error:  # a sandbox that forbids it: run with what there is
            log.warning("open files stay at %d (raising to %d refused: %s)", soft, hard, error)


def run(settings: Settings) -> int:
    _open_files_to_the_hard_limit()
    for name in ("asyncio", "hypercorn.error", "gateway.api.server"):
        logging.getLogger(name).addFilter(_Quota())
    store = open_store(settings.store_location)
    metrics = Metrics(store)
    ingest = Ingest(settings.ingest, store, settings.rules, metrics)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda number, frame: stop.set())
    signal.signal(signal.SIGINT, lambda number, frame: stop.set())
    forwarder = None
    if settings.forward.enabled:
        forwarder = Forwarder(settings.forward, store, timezone=settings.rules.timezone,
                              instance=settings.ingest.client_id, metrics=metrics)
    api = None
    if settings.api.enabled:
        try:
            api = ApiServer(settings.api, store, settings.rules, metrics,
                            read_token=settings.api.token or token_file(settings.data_dir / "api-token"),
                            write_token=settings.api.write_token or token_file(settings.data_dir / "api-write-token"),
                            ready=lambda: {"broker": ingest.connected, "ingest": ingest.alive,
                                           **({"forwarder": forwarder.alive} if forwarder else {})},
                            board=settings.dashboard)
        except OSError as error:
            store.close()
            raise ServiceError(f"api: cannot listen on {settings.api.host}:{settings.api.port}: {error.strerror}; "
                               "another process holds the port, or set api.port (0 = any free port)") from None
        api.start()
    ingest.start()
    if forwarder:
        forwarder.start()
    log.info("gateway running, database %s, API %s, forwarding %s", _shown(settings.store_location),
             f"http://{settings.api.host}:{api.port}" if api else "off", settings.forward.base_url or "off")
    print("ready", flush=True)
    systemd.notify("READY=1\nSTATUS=ingesting")
    _loop(settings, store, lambda: ingest.alive and (forwarder is None or forwarder.alive), stop)
    systemd.notify("STOPPING=1")
    ingest.stop()
    if forwarder:
        forwarder.stop()
    if api:
        api.stop()
    store.close()
    log.info("gateway stopped: %s", dict(ingest.counts))
    return 0


def _shown(location: str) -> str:
    """The store's location without a password."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", location)


def _loop(settings: Settings, store: Store, alive: Callable[[], bool], stop: threading.Event) -> None:
    """Run the sweeps on time, and ping the watchdog only while ingest, forwarding and the database work."""
    ping_s = systemd.watchdog_interval_s()
    next_sweep = 0.0
    while not stop.wait(min(1.0, ping_s) if ping_s else 1.0):
        now = time.monotonic()
        healthy = alive()
        if now >= next_sweep:
            next_sweep = now + settings.rules.sweep_interval_s
            try:
                pipeline.sweep(store, settings.rules, now_ms=time.time_ns() // 1_000_000)
            except Exception:  # a failed sweep is retried next time; a database that keeps failing stops the pings
                log.exception("sweep failed")
                healthy = False
        if ping_s and healthy:
            systemd.notify("WATCHDOG=1")
