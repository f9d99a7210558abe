"""The HIL suite's target option: clear errors before anything runs."""

import pytest

from hil_tests.targets import SerialTarget, VirtualTarget, make_target


def test_virtual_and_bad_specs(tmp_path):
    assert isinstance(make_target("virtual", tmp_path), VirtualTarget)
    assert make_target("pi-qemu", tmp_path).interpreter == "micropython-aarch64"
    with pytest.raises(RuntimeError, match="virtual, pi-qemu, rp2040 or serial:PORT"):
        make_target("usb", tmp_path)
    with pytest.raises(RuntimeError, match="is the board plugged in"):
        make_target("serial:/dev/ttyNOPE0", tmp_path)


def test_a_serial_target_needs_the_scanner_adapter():
    with pytest.raises(RuntimeError, match="needs --scanner"):
        SerialTarget("/dev/null", scanner="")
