"""Each board's defaults, and which GPIOs its chip can give the scan engine's UART, the LEDs and the buzzer.

Run by the config check: on the board at boot, and on the host by trace-provision, so a technician hears of a
wrong pin at the desk, not at the counter. `problem` returns a sentence naming the pin, what it is, and which
pins would do; "" when all is well.

RP2040 (datasheet, section 2.19.2, GPIO function F2): the UART pins repeat in blocks of four, TX, RX, CTS, RTS,
UART0 on GPIO0-3, 12-19 and 28-29, UART1 on GPIO4-11 and 20-27. So UART0 TX is GP0/GP12/GP16/GP28 and RX
GP1/GP13/GP17/GP29; UART1 TX GP4/GP8/GP20/GP24 and RX GP5/GP9/GP21/GP25. The RP2040 has one package, with all
30 GPIOs, but the Pico and Pico W use GP23-25 and GP29 on the board itself (power-save, VBUS sense, LED, VSYS
sense on the Pico; the radio on the Pico W): those are refused, so GP24, GP25 and GP29 are not offered.

ESP32: the GPIO matrix routes a UART to any pin, except GPIO6-11 (the SPI flash), GPIO34-39 (input only: no
TX, no LED), and GPIO1/3 (UART0, the REPL console). UART0 is the console, so the scanner gets UART1 or 2.
ESP32-S3: any pin but GPIO26-32 (flash and PSRAM), 33-37 (octal flash/PSRAM on N16R8-type modules), 19/20
(native USB, the console on most boards) and 43/44 (UART0).
"""

import sys

# What a board changes in config.DEFAULTS: its scanner UART (docs/firmware.md, "Pins") and a hardware watchdog.
BOARD_DEFAULTS = {
    "rp2": {"uart": {"id": 0, "tx": 16, "rx": 17}, "watchdog_ms": 8000},
    "esp32": {"uart": {"id": 1, "tx": 17, "rx": 16}, "watchdog_ms": 8000},
    "esp32s3": {"uart": {"id": 1, "tx": 17, "rx": 18}, "watchdog_ms": 8000},
}
_WATCHDOG_MAX_MS = {"rp2": 8388}  # the RP2040's watchdog counts 24 bits of microseconds (halved by erratum RP2040-E1)
_WATCHDOG_MIN_MS = 2000  # below this a TLS handshake or a flash erase could outlast it


def chip(board):
    """`board` as BOARD_DEFAULTS names it: on an ESP32-S3 itself (sys.platform "esp32" too), "esp32s3"."""
    if board == "esp32" and sys.platform == "esp32":
        import os

        if "ESP32S3" in os.uname().machine:
            return "esp32s3"
    return board


_RP2_BOARD_PINS = {23: "the power-save pin on the Pico, radio power on the Pico W",
                   24: "VBUS sense on the Pico, radio data on the Pico W",
                   25: "the LED on the Pico, radio select on the Pico W",
                   29: "VSYS sense on the Pico, radio clock on the Pico W"}
_RP2_ROLES = ("TX", "RX", "CTS", "RTS")


def _rp2_function(gpio):
    """(UART number, role) of an RP2040 GPIO in function F2."""
    return ((gpio + 4) >> 3) & 1, _RP2_ROLES[gpio & 3]


def _rp2_pins(uart_id, role):
    found = []
    for gpio in range(30):
        if gpio not in _RP2_BOARD_PINS and _rp2_function(gpio) == (uart_id, role):
            found.append("GP%d" % gpio)
    return ", ".join(found)


def _rp2_gpio(name, gpio):
    if not 0 <= gpio <= 29:
        return "%s: GP%d does not exist on the RP2040 (GP0-GP29)" % (name, gpio)
    if gpio in _RP2_BOARD_PINS:
        return "%s: GP%d is not on the Pico's header: it is %s" % (name, gpio, _RP2_BOARD_PINS[gpio])
    return ""


def _rp2_uart(field, uart_id, tx, rx):
    if uart_id not in (0, 1):
        return "%s.id: the RP2040 has UART0 and UART1, got %r" % (field, uart_id)
    for name, gpio, role in ((field + ".tx", tx, "TX"), (field + ".rx", rx, "RX")):
        wrong = _rp2_gpio(name, gpio)
        if wrong:
            return wrong
        found = _rp2_function(gpio)
        if found != (uart_id, role):
            return "%s: GP%d is UART%d %s on the RP2040, not UART%d %s; UART%d %s is on %s" % (
                name, gpio, found[0], found[1], uart_id, role, uart_id, role, _rp2_pins(uart_id, role))
    return ""


def _ppp_problem(board, config):
    """What is wrong with the PPP link's UART (`ppp`, rp2 only), as "field: reason"; or ""."""
    ppp = config["ppp"]
    if ppp["id"] == -1:
        return ""
    if board != "rp2":
        return "ppp.id: a PPP link is built for the Pico (image RPI_PICO_PPP); expected -1 on %s" % board
    if ppp["id"] == config["uart"]["id"]:
        return "ppp.id: UART%d is the scan engine's (uart.id); the PPP link needs the other one" % ppp["id"]
    if ppp["baud"] <= 0:
        return "ppp.baud: expected a baud rate, got %r" % ppp["baud"]
    return _rp2_uart("ppp", ppp["id"], ppp["tx"], ppp["rx"])


_ESP32_MISSING = (20, 24, 28, 29, 30, 31)
_ESP32S3_TAKEN = {19: "native USB D- (the console)", 20: "native USB D+ (the console)",
                  43: "UART0 TX (the console)", 44: "UART0 RX (the console)"}


def _esp_gpio(chip, name, gpio, output):
    if chip == "esp32":
        if not 0 <= gpio <= 39 or gpio in _ESP32_MISSING:
            return "%s: GPIO%d does not exist on the ESP32" % (name, gpio)
        if 6 <= gpio <= 11:
            return "%s: GPIO%d is wired to the SPI flash (GPIO6-11)" % (name, gpio)
        if gpio in (1, 3):
            return "%s: GPIO%d is UART0, the REPL console" % (name, gpio)
        if output and gpio >= 34:
            return "%s: GPIO%d is input-only (GPIO34-39): it cannot drive %s" % (
                name, gpio, "a TX line" if name == "uart.tx" else "an output")
        return ""
    if not 0 <= gpio <= 48 or 22 <= gpio <= 25:
        return "%s: GPIO%d does not exist on the ESP32-S3" % (name, gpio)
    if 26 <= gpio <= 37:
        return "%s: GPIO%d is wired to the flash or PSRAM on ESP32-S3 modules (GPIO26-37)" % (name, gpio)
    if gpio in _ESP32S3_TAKEN:
        return "%s: GPIO%d is %s" % (name, gpio, _ESP32S3_TAKEN[gpio])
    return ""


def problem(board, config):
    """What is wrong with `config`'s scanner UART, PPP UART, output pins and watchdog on `board`, as "field: reason";
    or "".

    board: "rp2", "esp32" or "esp32s3".
    """
    watchdog = config["watchdog_ms"]
    most = _WATCHDOG_MAX_MS.get(board, 60000)
    if watchdog and not _WATCHDOG_MIN_MS <= watchdog <= most:
        return "watchdog_ms: expected 0 (off) or %d-%d on %s, got %r" % (_WATCHDOG_MIN_MS, most, board, watchdog)
    uart = config["uart"]
    pins = config["pins"]
    if uart["baud"] <= 0:
        return "uart.baud: expected a baud rate, got %r" % uart["baud"]
    if board == "rp2":
        wrong = _rp2_uart("uart", uart["id"], uart["tx"], uart["rx"])
    elif board in ("esp32", "esp32s3"):
        if uart["id"] not in (1, 2):
            return "uart.id: expected 1 or 2 on the %s (UART0 is the REPL console), got %r" % (
                board.upper(), uart["id"])
        wrong = _esp_gpio(board, "uart.tx", uart["tx"], True) or _esp_gpio(board, "uart.rx", uart["rx"], False)
    else:
        return "board: expected rp2, esp32 or esp32s3, got %r" % board
    wrong = wrong or _ppp_problem(board, config)
    if wrong:
        return wrong
    if uart["tx"] == uart["rx"]:
        return "uart.tx and uart.rx: both are GPIO%d" % uart["tx"]
    used = {uart["tx"]: "uart.tx", uart["rx"]: "uart.rx"}
    if config["ppp"]["id"] != -1:
        used.update({config["ppp"]["tx"]: "ppp.tx", config["ppp"]["rx"]: "ppp.rx"})
    for name in sorted(pins):
        gpio = pins[name]
        if gpio < 0:
            continue
        if board == "rp2":
            wrong = _rp2_gpio("pins." + name, gpio) if gpio != 25 else ""  # GP25: the plain Pico's own LED
        else:
            wrong = _esp_gpio(board, "pins." + name, gpio, True)
        if wrong:
            return wrong
        if gpio in used:
            return "pins.%s: GPIO%d is already %s" % (name, gpio, used[gpio])
        used[gpio] = "pins." + name
    return ""
