"""A PPP link over a UART (network.PPP, lwIP): the network of a board without radio.

The board's UART goes to a PPP peer (a modem, or a host's PPP daemon); the firmware image must have
network.PPP (firmware/boards/RPI_PICO_PPP). lwIP reads the UART from its receive-idle interrupt, so nothing
here polls it. A failed or slow negotiation is closed and answered False: the link's backoff paces the next try.
"""

from tcagent.codec.compat import const
from tcagent.compat import sleep_ms, ticks_diff, ticks_ms

_CONNECT_TIMEOUT_MS = const(15000)  # LCP and IPCP take a few round trips; lwIP retries its requests every 3 s
_POLL_MS = const(100)


def available():
    """Whether this firmware has network.PPP."""
    try:
        import network
    except ImportError:
        return False
    return hasattr(network, "PPP")


class PppLink:
    """One PPP session on `uart` (a machine.UART), made when first connected, brought up again when it fell."""

    def __init__(self, uart):
        self._uart = uart
        self._ppp = None

    async def connect(self):
        """True once IPCP is up (the board has an address); False when it failed or took too long."""
        import network

        try:
            if self._ppp is None:
                self._ppp = network.PPP(self._uart)
            ppp = self._ppp
            if ppp.isconnected():
                return True
            ppp.connect()
            started = ticks_ms()
            while not ppp.isconnected():
                if ticks_diff(ticks_ms(), started) > _CONNECT_TIMEOUT_MS:
                    print("log ppp: no link within %d ms (status %d)" % (_CONNECT_TIMEOUT_MS, ppp.status()))
                    ppp.disconnect()  # the next attempt negotiates afresh
                    return False
                await sleep_ms(_POLL_MS)
            print("log ppp: up, address %s" % ppp.ipconfig("addr4")[0])
            return True
        except OSError as error:  # connect() while lwIP still closes the last session, or pppos_create failing
            print("log ppp: %s" % error)
            return False
