#!/usr/bin/env bash
# Run every test: firmware on CPython and on the micropython executable, gateway, tools.
# Extra arguments go to pytest (e.g. tools/test.sh -k cbor).
set -euo pipefail
source "$(dirname "$0")/setup-env.sh"
cd "$root"
set +e
python -m pytest "$@"
status=$?
set -e
[ "$status" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$status"
