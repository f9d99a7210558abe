#!/usr/bin/env bash
# Run every test: firmware on CPython and on the micropython executable, gateway, tools; then the HIL suite
# against a virtual device. Extra arguments go to pytest and skip the HIL run (e.g. tools/test.sh -k cbor).
set -euo pipefail
source "$(dirname "$0")/setup-env.sh"
cd "$root"
set +e
python -m pytest "$@"
status=$?
[ "$status" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
if [ "$#" -eq 0 ]; then
    # the hardware-in-the-loop suite against the firmware on the micropython executable (a real board:
    # python -m pytest hil_tests --target serial:/dev/ttyUSB0 --scanner /dev/ttyUSB1, see hil_tests/README.md)
    mkdir -p artifacts
    python -m pytest hil_tests --target virtual --junitxml=artifacts/hil-junit.xml -q
    hil=$?
    [ "$status" -eq 0 ] && status=$hil
fi
set -e
exit "$status"
