"""A small fake of MicroPython's `network` (WLAN station) for the board layer's tests (tests only).

Follows the rp2 port's documented behaviour (docs.micropython.org library/network.WLAN.html): connect() on an
inactive interface raises OSError; after connect() the status goes STAT_CONNECTING, then STAT_GOT_IP or a
failure code (STAT_WRONG_PASSWORD, STAT_NO_AP_FOUND, STAT_CONNECT_FAIL, the rp2 values); isconnected() is
True once it got an IP. A board without radio has no `network` module at all: importing this then fails.
"""

import machine

if not machine.BOARD["radio"]:
    raise ImportError("no module named 'network'")

STA_IF = 0
AP_IF = 1
STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_GOT_IP = 3
STAT_CONNECT_FAIL = -1
STAT_NO_AP_FOUND = -2
STAT_WRONG_PASSWORD = -3

# What each connect() meets, in order (then "ok"): "ok", "raise" (connect raises OSError), "wrong_password",
# "no_ap", "fail", "active_raise" (active(True) raises OSError: the radio did not start)
SCRIPT = []
LOG = []  # ("active", on) ("connect", ssid) ("got_ip",) ("disconnect",)
AIR = {"up": True}  # False: the access point is gone (a connected station loses its link)
_OUTCOMES = {"ok": STAT_GOT_IP, "wrong_password": STAT_WRONG_PASSWORD, "no_ap": STAT_NO_AP_FOUND,
             "fail": STAT_CONNECT_FAIL}


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False
        self._status = STAT_IDLE
        self._polls = 0

    def active(self, on=None):
        if on is None:
            return self._active
        LOG.append(("active", bool(on)))
        if on and SCRIPT and SCRIPT[0] == "active_raise":
            SCRIPT.pop(0)
            raise OSError(-1)  # the CYW43 driver's error while the radio does not come up
        self._active = bool(on)
        return None

    def connect(self, ssid=None, key=None):
        LOG.append(("connect", ssid))
        if not self._active:
            raise OSError(1)  # EPERM: the interface is not active
        outcome = SCRIPT.pop(0) if SCRIPT else "ok"
        if outcome == "raise":
            raise OSError(-2)
        self._status = STAT_CONNECTING
        self._polls = 1  # one status poll says "connecting", then the outcome
        self._outcome = _OUTCOMES[outcome]

    def status(self, param=None):
        if self._status == STAT_CONNECTING:
            if self._polls:
                self._polls -= 1
            else:
                self._status = self._outcome
                if self._status == STAT_GOT_IP and AIR["up"]:
                    LOG.append(("got_ip",))
        if self._status == STAT_GOT_IP and not AIR["up"]:
            self._status = STAT_CONNECT_FAIL
        return self._status

    def isconnected(self):
        return self.status() == STAT_GOT_IP

    def disconnect(self):
        LOG.append(("disconnect",))
        self._status = STAT_IDLE

    def ifconfig(self):
        return ("192.168.4.20", "255.255.255.0", "192.168.4.1", "192.168.4.1")
