"""Boot entry of the scanner agent: `micropython main.py [config.json]`, or main.py on a board's flash."""

import asyncio
import sys

from tcagent import agent, config, hal, link


def run(path):
    try:
        settings = config.load(path)
    except config.ConfigError as error:
        print("config error: %s" % error)
        sys.exit(2)
    board = hal.load(settings)
    buffers = link.buffers_for(settings)  # before the journal's boot scan, while the heap is in one piece
    device = agent.Agent(settings, board)
    network = link.Link(device, buffers)
    # `code` tells which copy of the agent runs: a frozen one is named without a folder (tcagent/agent.py)
    print("log agent %s for %s on %s%s: boot %d, next seq %d, backlog %d, watchdog %d ms, code %s" % (
        agent.VERSION, device.device, board.name, "" if board.network_available() else " (no network)",
        device.journal.boot, device.journal.next_seq(), device.journal.backlog(), settings["watchdog_ms"],
        getattr(agent, "__file__", "?")))
    asyncio.run(device.run(network))


run(sys.argv[1] if len(sys.argv) > 1 else "config.json")
