"""The board layer (tcagent.hal.board, rp2, esp32) on the fakes in fakeboard/, on CPython and the unix port.

Each scenario installs the fakes (`machine`, `network`, `ntptime`), imports the board layer afresh (so a
Pico without radio meets an import of `network` that fails, as on the board), runs, and reports plain data.
"""

import sys

from tcagent import config
from tcagent.codec import cbor

_FAKES = __file__.rsplit("/", 1)[0] + "/fakeboard"
_FRESH = ("network", "ntptime", "tcagent.hal.board", "tcagent.hal.rp2", "tcagent.hal.esp32")
_CLOSED_PORT = 9  # nothing listens on the discard port here: the MQTT connection is refused at once
# LEDs and buzzer on pins the RP2040 and the ESP32 can both drive, apart from the default UART pins
PINS = {"buzzer": 21, "led_green": 18, "led_red": 19, "led_amber": 22}


def _install(platform, radio):
    """The fake machine module, reset, with the board layer to be imported again."""
    if _FAKES not in sys.path:
        sys.path.insert(0, _FAKES)
    import machine

    machine.BOARD["platform"] = platform
    machine.BOARD["radio"] = radio
    machine.LOG.clear()
    machine.UARTS.clear()
    machine.CLOCK.__init__()
    package = sys.modules.get("tcagent.hal")
    for name in _FRESH:
        if name in sys.modules:
            del sys.modules[name]
        short = name.rsplit(".", 1)[-1]
        if package is not None and name.startswith("tcagent.hal.") and short in dir(package):
            delattr(package, short)
    return machine


def _settings(folder, key, board, extra):
    values = {"device_id": "dev-0001", "key_hex": bytes(key).hex(), "broker_host": "127.0.0.1",
              "broker_port": _CLOSED_PORT, "data_dir": folder, "journal_capacity": 16384, "journal_segment": 4096,
              "pins": PINS, "wifi_ssid": "Shop", "wifi_password": "secret", "backoff_max_s": 1}
    for name in extra:
        values[name] = extra[name]
    return config.check(values, board)


def _new_loop():
    import asyncio

    if hasattr(asyncio, "new_event_loop") and sys.implementation.name == "micropython":
        asyncio.new_event_loop()  # drop the tasks a reset left in MicroPython's one queue


def board_import(platform, radio):
    """Import the board layer as `main.py` does on that board; the name of the module, or the ImportError."""
    _install(platform, radio)
    from tcagent import hal

    try:
        layer = hal.load(_settings("data", bytes(32), "rp2" if platform == "rp2" else "esp32", {}), platform)
    except ImportError as error:
        return "ImportError: %s" % error
    return [layer.name, layer.network_available()]


def board_wifi(folder, script, losses=()):
    """Call connect_network once per item of `script` (what connect() meets); after the calls numbered in
    `losses`, the access point goes and comes back. Returns each answer, the radio's log, what escaped."""
    import asyncio

    machine = _install("rp2", True)
    from tcagent.hal import rp2

    layer = rp2.Hal(_settings(folder, bytes(32), "rp2", {}))
    import network

    network.SCRIPT[:] = list(script)
    del network.LOG[:]
    network.AIR["up"] = True
    answers = []
    escaped = []

    async def scenario():
        for number in range(len(script)):
            try:
                answers.append(await layer.connect_network())
            except Exception as error:  # what connect_network let through is the finding
                escaped.append("%s: %s" % (type(error).__name__, error))
                answers.append(None)
            if number in losses:
                network.AIR["up"] = False
                answers.append(await layer.connect_network())
                network.AIR["up"] = True

    _new_loop()
    asyncio.run(scenario())
    del machine.LOG[:]
    return {"answers": answers, "radio": [list(entry) for entry in network.LOG], "escaped": escaped}


def board_clock(folder, steps, extra=None):
    """sync_clock and the gateway's time command on an rp2 board whose RTC reads 2021-01-01 (power lost).

    steps: ["ntp", answer] (seconds since 1970 or "timeout") | ["gateway", epoch_ms]. After each step:
    [clock state, RTC year, time_ms, the RTC's seconds]."""
    import asyncio

    machine = _install("rp2", True)
    from tcagent.hal import board, rp2

    board.time = machine.CLOCK  # the board's time.time() is its RTC
    layer = rp2.Hal(_settings(folder, bytes(32), "rp2", extra or {}))
    import ntptime

    ntptime.ASKED[:] = []
    trace = []
    for step in steps:
        if step[0] == "ntp":
            ntptime.ANSWERS[:] = [step[1]]
            asyncio.run(layer.sync_clock())
        else:
            layer.set_time(step[1])
        trace.append([layer.clock, machine.RTC().datetime()[0], layer.time_ms(), machine.CLOCK.time()])
    return {"trace": trace, "asked": list(ntptime.ASKED), "floor": board.FIRMWARE_DATE_S}


def board_run(folder, key, platform, radio, plan, extra=None):
    """Boot the agent as main.py does, on the fakes of `platform`, and follow `plan` while it runs.

    plan: ["scan", text] (bytes on the scanner UART) | ["wait", ms] | ["wifi", script] (what the next
    connect() calls meet) | ["air", up] | ["ntp", answers] | ["flash_fails"] (the next journal append
    raises OSError) | ["status"] (decode the status message now) | ["break_uart", "OSError" or "ValueError"]
    (the UART's reads raise it) | ["await", entry, count] (until the radio's log holds `count` of `entry`,
    or NTP was asked `count` times for "ntp"; at most 15 s).
    The run ends after the plan, or when the board resets.
    """
    import asyncio

    from tcagent import agent, hal, link

    machine = _install(platform, radio)
    settings = _settings(folder, key, "rp2" if platform == "rp2" else "esp32", extra or {})
    layer = hal.load(settings, platform)
    from tcagent.hal import board

    board.time = machine.CLOCK
    if sys.implementation.name != "micropython":
        layer.free_heap = lambda: 0  # CPython's gc has no mem_free
    device = agent.Agent(settings, layer)
    network_link = link.Link(device.port, layer, settings)
    signals = []
    statuses = []
    play = layer.signal

    def signal(name, detail=""):
        signals.append(name)
        play(name, detail)

    layer.signal = signal
    if radio:
        import network

        network.SCRIPT[:] = []
        del network.LOG[:]
        network.AIR["up"] = True
    import ntptime

    ntptime.ANSWERS[:] = []
    ntptime.ASKED[:] = []

    def failing_append(seq, message):
        machine.LOG.append(("flash_fails",))
        raise OSError(5)  # EIO from the flash

    async def driver():
        for step in plan:
            if step[0] == "scan":
                for _ in range(100):  # the scanner task opens its UART at its first turn
                    if settings["uart"]["id"] in machine.UARTS:
                        break
                    await asyncio.sleep(0.02)
                machine.UARTS[settings["uart"]["id"]].waiting.extend(step[1].encode() + b"\r\n")
            elif step[0] == "wait":
                await asyncio.sleep(step[1] / 1000)
            elif step[0] == "wifi":
                network.SCRIPT[:] = list(step[1])
            elif step[0] == "air":
                network.AIR["up"] = step[1]
            elif step[0] == "ntp":
                ntptime.ANSWERS[:] = list(step[1])
            elif step[0] == "flash_fails":
                device.journal.append = failing_append
            elif step[0] == "break_uart":
                machine.UARTS[settings["uart"]["id"]].fault = OSError(5) if step[1] == "OSError" else ValueError()
            elif step[0] == "await":
                for _ in range(750):
                    seen = ntptime.ASKED if step[1] == "ntp" else [e for e in network.LOG if e[0] == step[1]]
                    if len(seen) >= step[2]:
                        break
                    await asyncio.sleep(0.02)
            elif step[0] == "status":
                statuses.append(cbor.loads(device.status())[1])

    async def main():
        running = asyncio.create_task(device.run(network_link))
        driving = asyncio.create_task(driver())
        while not driving.done() and not running.done():
            await asyncio.sleep(0.02)
        if running.done():
            await running  # a reset ends the run: raise it here (CPython keeps it in the task)
        await driving  # a mistake in the plan shows as itself

    _new_loop()
    reset = False
    try:
        asyncio.run(main())
    except machine.Reset:
        reset = True
    _new_loop()
    log = [list(entry) for entry in machine.LOG]
    ended_at = len(log)
    for index in range(len(log)):
        if log[index][0] == "flash_fails":
            ended_at = index
            break
    state = {
        "reset": reset, "ended": device.ended, "online": cbor.loads(device.status())[1], "statuses": statuses,
        "network": layer.network_available(), "signals": signals, "last_seq": device.journal.last_seq,
        "clock": layer.clock, "uart": [entry for entry in log if entry[0] == "uart"],
        "watchdog": [entry[1] for entry in log if entry[0] == "wdt"],
        "feeds": len([entry for entry in log if entry[0] == "feed"]),
        "feeds_after_failure": len([entry for entry in log[ended_at:] if entry[0] == "feed"]),
        "leds": [entry[1:] for entry in log if entry[0] == "pin"],
        "buzzer": [entry[2] for entry in log if entry[0] == "pwm"],
        "rtc_years": [entry[1][0] for entry in log if entry[0] == "rtc"],
        "ntp_asked": list(ntptime.ASKED),
        "radio": [list(entry) for entry in network.LOG] if radio else [],
    }
    device.journal.close()
    return state
