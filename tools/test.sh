#!/usr/bin/env bash
# Run every test: firmware on CPython, on the micropython executable and on a Pico in the RP2040 model, gateway,
# tools; the gateway suite again on PostgreSQL; then the HIL suite against a virtual device, against the
# Raspberry Pi's executable under qemu-aarch64, and against the Pico in the RP2040 model (its network PPP to
# this machine). Extra arguments go to pytest and skip the PostgreSQL and HIL runs (e.g. tools/test.sh -k cbor).
set -euo pipefail
source "$(dirname "$0")/setup-env.sh"
cd "$root"
have_mosquitto || need_package mosquitto
# PostgreSQL's server binaries (the tests start a throwaway cluster of their own on a free port)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v pg_config >/dev/null || need_package postgresql
# the Raspberry Pi's executables (firmware/images/unix-aarch64-*, unix-armhf-*) run under qemu-user on a PC
{ command -v qemu-aarch64 && command -v qemu-arm; } >/dev/null || need_package qemu-user
# the RP2040 model (tests/firmware/test_rp2040_model.py): Node and rp2040js, pinned in harness/rp2040's lock file
command -v node >/dev/null || need_package nodejs
command -v npm >/dev/null || need_package npm
model="$root/harness/rp2040"
if ! cmp -s "$model/package-lock.json" "$model/node_modules/.installed-lock" 2>/dev/null; then
    echo "installing the RP2040 model's packages (npm ci in harness/rp2040)" >&2
    (cd "$model" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.installed-lock)
fi
# the host's end of the model Pico's PPP link (hil_tests --target rp2040, harness/ppp_peer.py)
command -v slirp-fullbolt >/dev/null || need_package slirp
set +e
python -m pytest "$@"
status=$?
[ "$status" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
if [ "$#" -eq 0 ]; then
    # the gateway suite once more on PostgreSQL (tests/system/test_scale_out.py ran on it already)
    python -m pytest tests/gateway tests/system/test_gateway_faults.py tests/system/test_gateway_service.py \
        tests/system/test_forwarding.py --store postgresql -q
    pg=$?
    [ "$status" -eq 0 ] && status=$pg
    # the hardware-in-the-loop suite against the firmware on the micropython executable (a real board:
    # python -m pytest hil_tests --target serial:/dev/ttyUSB0 --scanner /dev/ttyUSB1, see hil_tests/README.md)
    mkdir -p artifacts
    python -m pytest hil_tests --target virtual --junitxml=artifacts/hil-junit.xml -q
    hil=$?
    [ "$status" -eq 0 ] && status=$hil
    # and against the Raspberry Pi's aarch64 executable under qemu-aarch64
    python -m pytest hil_tests --target pi-qemu --junitxml=artifacts/hil-pi-qemu-junit.xml -q
    hil=$?
    [ "$status" -eq 0 ] && status=$hil
    # the same suite on the PPP Pico image in the RP2040 model (root: its PPP peer runs in a UTS namespace)
    python -m pytest hil_tests --target rp2040 --junitxml=artifacts/hil-rp2040-junit.xml -q
    hil=$?
    [ "$status" -eq 0 ] && status=$hil
fi
set -e
exit "$status"
