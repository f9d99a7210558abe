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
    device = agent.Agent(settings, board)
    network = link.Link(device)
    print("log agent %s for %s on %s: boot %d, next seq %d, backlog %d" % (
        agent.VERSION, device.device, board.name, device.journal.boot, device.journal.next_seq(),
        device.journal.backlog()))

    async def main():
        tasks = [asyncio.create_task(device.scanner_loop()), asyncio.create_task(network.run()),
                 asyncio.create_task(network.status_loop())]

        def healthy():
            for task in tasks:
                if task.done():
                    return False
            return True

        await device.timer_loop(healthy)

    asyncio.run(main())


run(sys.argv[1] if len(sys.argv) > 1 else "config.json")
