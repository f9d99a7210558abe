"""A small fake of micropython-lib's `ntptime` (tests only).

As the real module: `host` and `timeout` are set by the caller; time() returns the server's time in seconds
since the port's epoch, or raises OSError (ETIMEDOUT) when no answer comes within `timeout`; settime() sets
the RTC from it. ANSWERS holds what each time() gets, in order: seconds since 1970, or "timeout".
"""

import time as _clock

import machine

host = "pool.ntp.org"
timeout = 1
ANSWERS = []
ASKED = []  # the host of each call


def time():
    ASKED.append(host)
    answer = ANSWERS.pop(0) if ANSWERS else "timeout"
    if answer == "timeout":
        raise OSError(110)  # ETIMEDOUT
    return answer


def settime():
    tm = _clock.gmtime(time())
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))
