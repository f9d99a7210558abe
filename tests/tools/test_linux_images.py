"""The Linux boards' executables: each runs here (under qemu-user when foreign), runs today's agent when its
folder is on MICROPYPATH and its frozen copy otherwise; a board's architecture is told from uname or an ELF file."""

import subprocess

import pytest

from tools import linux_images
from tools.paths import FIRMWARE, micropython_command, micropython_env

REPORT = "import sys, tcagent.agent; print(sys.implementation.version, tcagent.agent.__file__)"


@pytest.mark.parametrize("arch", linux_images.ARCHES)
def test_each_executable_runs_today_s_agent_ahead_of_its_frozen_copy(arch):
    def report(env):
        done = subprocess.run([*linux_images.command(arch), "-c", REPORT], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert report(micropython_env(FIRMWARE)) == f"(1, 28, 0, '') {FIRMWARE}/tcagent/agent.py"
    assert report({"MICROPYPATH": ".frozen"}) == "(1, 28, 0, '') tcagent/agent.py"  # the frozen copy: no folder


def test_a_board_s_architecture_from_uname_and_from_its_executables(tmp_path):
    assert [linux_images.arch_of_machine(name) for name in ("aarch64", "armv7l", "armv8l", "x86_64")] == [
        "aarch64", "armhf", "armhf", "x86_64"]
    with pytest.raises(linux_images.ArchError, match="ARMv6.*--python"):
        linux_images.arch_of_machine("armv6l")
    with pytest.raises(linux_images.ArchError, match="give --arch"):
        linux_images.arch_of_machine("riscv64")
    for arch in linux_images.ARCHES:
        assert linux_images.arch_of_elf(linux_images.image(arch)) == arch
    script = tmp_path / "sh"
    script.write_text("#!/bin/busybox sh\n")
    with pytest.raises(linux_images.ArchError, match="not an ELF executable: give --arch"):
        linux_images.arch_of_elf(script)
    with pytest.raises(linux_images.ArchError, match="cannot read"):
        linux_images.arch_of_elf(tmp_path / "missing")


def test_builds_by_name():
    assert micropython_command("micropython-aarch64")[-1] == str(linux_images.image("aarch64"))
    with pytest.raises(ValueError, match="unknown MicroPython build 'micropython-mips'"):
        micropython_command("micropython-mips")
