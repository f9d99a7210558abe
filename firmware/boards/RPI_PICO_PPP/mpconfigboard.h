// A Raspberry Pi Pico with lwIP and network.PPP (see mpconfigboard.cmake); flash layout as upstream's RPI_PICO,
// so the filesystem sits where it does on a plain Pico.
#define MICROPY_HW_BOARD_NAME                   "Raspberry Pi Pico (PPP)"
#define MICROPY_HW_FLASH_STORAGE_BYTES          (1408 * 1024)

#define MICROPY_PY_NETWORK                      (1)
#define MICROPY_PY_NETWORK_HOSTNAME_DEFAULT     "tc-pico"
#define MICROPY_PY_NETWORK_PPP_LWIP             (1)
