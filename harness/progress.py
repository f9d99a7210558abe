"""Progress lines on stderr for the long-running tools, so a run of minutes shows that it is moving and where.

stdout stays for the figures (often JSON); progress goes to stderr, one line per phase and at most one line every
`every_s` seconds in between.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, tool: str, every_s: float = 5.0) -> None:
        self.tool = tool
        self.every_s = every_s
        self.started = self.last = time.monotonic()

    def phase(self, text: str) -> None:
        """A new step begins: always said."""
        self._print(text)

    def tick(self, text: str) -> None:
        """Where a long step is: said when `every_s` passed since the last line."""
        if time.monotonic() - self.last >= self.every_s:
            self._print(text)

    def _print(self, text: str) -> None:
        self.last = time.monotonic()
        print(f"{self.tool}: {self.last - self.started:5.0f} s  {text}", file=sys.stderr, flush=True)
