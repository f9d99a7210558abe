"""Hypercorn serving one ASGI app from a background thread with its own event loop.

Hypercorn rather than the standard library's server (a thread per connection, no timeouts, backlog 5) or uvicorn:
a connection has `header_timeout_s` from its opening (or from its last answer) to send a whole request head, so a
client that sends half a request is closed then whatever it dribbles; a request in progress whose client stays
silent for `read_timeout_s` is closed; heads are capped at 16 KiB; `Content-Length` that is negative or not a
number is refused by h11 before the app runs. uvicorn (0.3x) has no timeout on a request head at all: a client
that stops half-way holds its connection as long as it likes.

The socket is bound in the constructor, so `port` is known at once (port 0 picks a free one) and a port in use
fails there; it listens with `backlog` while the loop starts. `stop()` lets requests in hand finish for up to
`graceful_s`, then closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp

__all__ = ["BackgroundServer"]

log = logging.getLogger("gateway.api")


class BackgroundServer:
    def __init__(self, app: ASGIApp, *, host: str, port: int, backlog: int, header_timeout_s: float,
                 read_timeout_s: float, graceful_s: float = 3.0, name: str = "api") -> None:
        listening = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                         backlog=backlog)
        self.host = host
        self.port: int = listening.getsockname()[1]
        """The port listened on (the one chosen when asked for 0)."""
        self._fd: int | None = listening.detach()  # Hypercorn owns (and closes) it from start() on
        config = Config()
        config.bind = [f"fd://{self._fd}"]
        config.backlog = backlog
        config.keep_alive_timeout = header_timeout_s
        config.read_timeout = max(1, round(read_timeout_s))
        config.graceful_timeout = graceful_s
        config.include_server_header = False
        config.accesslog = None
        config.errorlog = logging.getLogger("gateway.api.server")
        self._config = config
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._running.wait(10)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is None or self._stopping is None:
            if self._fd is not None and not self._thread.is_alive():  # never started: the socket is still ours
                os.close(self._fd)
                self._fd = None
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("API server still stopping after %s s", timeout_s)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception:  # the API is down but ingest goes on; /readyz cannot tell, the log must
            log.exception("API server failed")
        finally:
            self._running.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._running.set()
        # Hypercorn types the app with its own scope TypedDicts; Starlette's are plain mappings of the same
        await serve(self._app, self._config, shutdown_trigger=self._stopping.wait)  # type: ignore[arg-type]
