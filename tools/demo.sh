#!/usr/bin/env bash
# The main job, on embedded defaults: the whole system with real firmware, broker, gateway and platform simulator.
# The broker is Mosquitto when installed, otherwise the embedded rumqttd from PyPI (the demo says which).
set -euo pipefail
source "$(dirname "$0")/setup-env.sh"
cd "$root"
python -m demo "$@"
