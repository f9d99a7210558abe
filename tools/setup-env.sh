# Sourced by tools/demo.sh and tools/test.sh: make .venv with the project and its dev tools.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
# need_package PACKAGE: install a Debian package (as root), or say how and stop.
need_package() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing $1 (apt-get)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
    else
        echo "$1 is missing: sudo apt-get install $1" >&2
        exit 1
    fi
}
# have_mosquitto: the broker the tests run (each on its own loopback port) and the demo prefers.
have_mosquitto() {
    command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]
}
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" || { echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
fi
stamp="$venv/.installed-$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setting up $venv (first run, or pyproject.toml changed)" >&2
    pip_quiet() {  # show pip's output only when it fails
        "$venv/bin/python" -m pip --quiet "$@" >"$venv/pip.log" 2>&1 || { cat "$venv/pip.log" >&2; exit 1; }
    }
    pip_quiet install --upgrade pip
    pip_quiet install -e "$root[dev]"
    # MicroPython's typeshed (ESP32 and RP2 stubs) for type-checking firmware/; kept apart from the venv's own.
    pip_quiet install --upgrade --no-deps --target "$venv/mp-typeshed" micropython-typeshed
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
