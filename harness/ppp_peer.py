"""The host's end of a Pico's PPP link in the RP2040 model: slirp's PPP on a pty, relayed to one of the model's UARTs.

The board's lwIP negotiates with a real PPP peer and sends real IP; slirp (Debian package `slirp`, its
`slirp-fullbolt` binary: the plain `slirp` exits at once on 64-bit Debian 12) answers on the host's own sockets.
The board reaches this machine's loopback at HOST_ALIAS (10.0.2.2, slirp's name for the host), so a broker bound to
127.0.0.1 serves it; no packet of the link reaches a host interface.

Why not pppd: it needs the kernel's PPP driver (/dev/ppp, char 108), which the development and CI machines'
kernel lacks (CONFIG_PPP is not set: pppd stops at "Couldn't open the /dev/ppp device"; a node made with
`mknod c 108 0` gives ENXIO). slirp needs none. Its own address is that of the host's name (loopback is refused),
so it runs in a UTS namespace named HOST_ALIAS (root: `unshare --uts`), with "host addr 127.0.0.1" for the sockets.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import subprocess
import termios
import threading
import tty
from pathlib import Path

from harness.pico_model import PicoModel

__all__ = ["HOST_ALIAS", "BOARD_ADDRESS", "SlirpPeer", "peer_available"]

HOST_ALIAS = "10.0.2.2"
"""Where the board finds this machine's loopback (a broker on 127.0.0.1)."""
BOARD_ADDRESS = "10.0.2.15"
"""The address slirp gives the board in IPCP."""
SLIRP = "slirp-fullbolt"


def peer_available() -> str | None:
    """Why the PPP peer cannot run here, or None."""
    if shutil.which(SLIRP) is None:
        return f"{SLIRP} is not installed (Debian: apt-get install slirp)"
    if shutil.which("unshare") is None:
        return "unshare is not installed (Debian: util-linux)"
    if os.geteuid() != 0:
        return "the PPP peer runs slirp in a UTS namespace of its own: that needs root"
    return None


def _controlling_tty() -> None:
    """In the child: a session of its own with the pty as its terminal (slirp sets the line's modes on it)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class SlirpPeer:
    """slirp on a pty whose line is UART `uart` of `pico`; `stop()` ends both the relay and slirp."""

    def __init__(self, pico: PicoModel, uart: int, workdir: Path) -> None:
        reason = peer_available()
        if reason is not None:
            raise RuntimeError(reason)
        self._pico, self._uart = pico, uart
        workdir.mkdir(parents=True, exist_ok=True)
        self._master, slave = pty.openpty()
        tty.setraw(slave)
        script = f'hostname {HOST_ALIAS} && exec {SLIRP} ppp "host addr 127.0.0.1"'
        self._slirp = subprocess.Popen(["unshare", "--uts", "sh", "-c", script], stdin=slave, stdout=slave,
                                       stderr=slave, cwd=workdir, env={**os.environ, "HOME": str(workdir)},
                                       preexec_fn=_controlling_tty)
        os.close(slave)
        self._stopping = False
        pico.on_uart(uart, self._to_slirp)
        self._relay = threading.Thread(target=self._to_board, daemon=True)
        self._relay.start()

    def _to_slirp(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except OSError:  # slirp ended: the board's frames go nowhere, as on a dead line
            pass

    def _to_board(self) -> None:
        while not self._stopping:
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            try:
                self._pico.uart_write(self._uart, data)
            except Exception:  # the model stopped (a reset): the line is cut
                return

    def stop(self) -> None:
        self._stopping = True
        self._relay.join(2)
        if self._slirp.poll() is None:
            self._slirp.terminate()
            try:
                self._slirp.wait(5)
            except subprocess.TimeoutExpired:
                self._slirp.kill()
                self._slirp.wait()
        os.close(self._master)
