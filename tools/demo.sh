#!/usr/bin/env bash
# The main job, on embedded defaults. For now: decode sample scans, sign one event, verify it as the gateway would.
set -euo pipefail
source "$(dirname "$0")/setup-env.sh"
cd "$root"
python -m tools.demo "$@"
