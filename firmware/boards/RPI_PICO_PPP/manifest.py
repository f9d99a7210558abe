# The port's modules, and MicroPython's networking bundle (ntptime, mip, requests, ...), as the Pico W has it.
include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821 (a manifest function)

require("bundle-networking")  # noqa: F821
