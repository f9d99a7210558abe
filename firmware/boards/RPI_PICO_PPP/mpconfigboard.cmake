# A Raspberry Pi Pico (no radio) with lwIP and network.PPP: its network is a PPP link over a UART (a modem, a
# host's PPP peer, or the RP2040 model's line to one). Everything else is upstream's RPI_PICO.
include(${MICROPY_PORT_DIR}/boards/RPI_PICO/mpconfigboard.cmake)
set(MICROPY_BOARD_PINS ${MICROPY_PORT_DIR}/boards/RPI_PICO/pins.csv)
set(MICROPY_PY_LWIP ON)
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
