"""Boot entry of the scanner agent: `micropython main.py [config.json]`, or main.py on a board's flash.

Without a usable config the agent cannot start. On Linux it exits with status 2 (the service manager gives up
after a few tries). A board must not exit: MicroPython soft-reboots after `sys.exit` in main.py and would run it
again at once, for ever; so it stays in `board.halt`, saying what is wrong and blinking its LED, until Ctrl-C
(mpremote, to copy the config) or a reset."""

import asyncio
import sys

from tcagent import agent, config, hal, link


def run(path):
    try:
        settings = config.load(path)
    except config.ConfigError as error:
        if sys.platform in ("rp2", "esp32"):
            from tcagent.hal import board

            board.halt("config error: %s" % error)
        print("config error: %s" % error)
        sys.exit(2)
    board = hal.load(settings)
    buffers = link.buffers_for(settings)  # before the journal's boot scan, while the heap is in one piece
    device = agent.Agent(settings, board)
    network = link.Link(device.port, board, settings, buffers)
    # `code` tells which copy of the agent runs: a frozen one is named without a folder (tcagent/agent.py)
    print("log agent %s for %s on %s%s: boot %d, next seq %d, backlog %d, watchdog %d ms, code %s" % (
        agent.VERSION, device.device, board.name, "" if board.network_available() else " (no network)",
        device.journal.boot, device.journal.next_seq(), device.journal.backlog(), settings["watchdog_ms"],
        getattr(agent, "__file__", "?")))
    asyncio.run(device.run(network))


run(sys.argv[1] if len(sys.argv) > 1 else "config.json")
