"""What differs between MicroPython and CPython, in one place."""

try:
    from micropython import const
except ImportError:  # CPython: const() is MicroPython's compile-time constant, here the value itself

    def const(value):  # type: ignore[misc]
        return value


__all__ = ["const"]
