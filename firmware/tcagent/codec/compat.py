"""What a module that runs on MicroPython and CPython alike needs for its constants and hot functions."""

try:
    from micropython import const
except ImportError:  # CPython: const() is MicroPython's compile-time constant, here the value itself

    def const(value):  # type: ignore[misc]
        return value


def native(function):
    """Marks a hot function for machine code. Run from source it is the function as written: the aarch64
    unix port has no native emitter and refuses `@micropython.native`, so the source cannot carry it. Compiled
    for a board's arch (tools/paths.compile_firmware), the decorator line becomes `@micropython.native`."""
    return function


__all__ = ["const", "native"]
