# Frozen into the release images (firmware/images/build.sh): the board's own modules, then the agent.
# MicroPython's manifest format (docs: reference/manifest): include, package, module.
# The Pico W has a manifest of its own (networking, aioble); the plain Pico uses the port's. For the unix port
# build.sh build-unix gives BOARD_DIR as the standard variant's folder (asyncio, ssl).
try:
    include("$(BOARD_DIR)/manifest.py")  # noqa: F821 (a manifest function)
except Exception:
    include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821

# paths are relative to this file; package() takes the subpackages too (tcagent/codec, tcagent/hal)
package("tcagent")  # noqa: F821
module("main.py")  # noqa: F821
