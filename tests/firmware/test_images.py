"""The committed binaries are the ones their READMEs record: firmware images (Pico UF2s, unix-port executables
for Linux boards) and the RP2040 boot ROM.

An image rebuilt or replaced without its record (firmware/images/build.sh rewrites it) fails here, and so does a
record of a file that is not there.
"""

import hashlib
import re

import pytest

from conftest import ROOT

RECORDS = {
    ROOT / "firmware" / "images": ("*.uf2", "*.elf"),
    ROOT / "harness" / "rp2040": ("*.bin",),
}
ROW = re.compile(r"^\| (?P<file>[\w.-]+\.(?:uf2|bin|elf)) \| (?P<bytes>\d+) \| (?P<sha256>[0-9a-f]{64}) \|$", re.M)


def recorded(folder):
    return {match["file"]: (int(match["bytes"]), match["sha256"])
            for match in ROW.finditer((folder / "README.md").read_text())}


@pytest.mark.parametrize("folder", sorted(RECORDS), ids=lambda folder: str(folder.relative_to(ROOT)))
def test_every_binary_is_the_one_its_readme_records(folder):
    record = recorded(folder)
    files = {path.name: path.read_bytes() for pattern in RECORDS[folder] for path in folder.glob(pattern)}
    assert files, f"no {RECORDS[folder]} in {folder}"
    assert sorted(record) == sorted(files), (
        f"{folder}/README.md records {sorted(record)}, the folder holds {sorted(files)}")
    for name, data in files.items():
        assert (len(data), hashlib.sha256(data).hexdigest()) == record[name], (
            f"{folder.name}/{name} is not the file its README records (firmware/images/build.sh record rewrites it)")


def test_the_pico_images_are_there():
    names = recorded(ROOT / "firmware" / "images")
    assert "RPI_PICO-v1.28.0-base.uf2" in names  # the one the RP2040 model test boots
    assert "RPI_PICO-v1.28.0-release.uf2" in names


@pytest.mark.parametrize(("arch", "machine", "elf_class"), [("aarch64", 183, 2), ("armhf", 40, 1), ("x86_64", 62, 2)])
def test_the_linux_executables_are_static_and_of_their_architecture(arch, machine, elf_class):
    """What trace-flash linux installs runs without the board's libraries (no program interpreter)."""
    import struct

    data = (ROOT / "firmware" / "images" / f"unix-{arch}-v1.28.0-release.elf").read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == elf_class
    assert struct.unpack_from("<H", data, 18)[0] == machine
    if elf_class == 2:
        table, entry_size, entries = struct.unpack_from("<Q", data, 32)[0], *struct.unpack_from("<HH", data, 54)
    else:
        table, entry_size, entries = struct.unpack_from("<I", data, 28)[0], *struct.unpack_from("<HH", data, 42)
    kinds = [struct.unpack_from("<I", data, table + number * entry_size)[0] for number in range(entries)]
    assert 1 in kinds and 3 not in kinds  # loadable segments, and no PT_INTERP (the dynamic loader)
    assert b"tcagent/agent.py" in data


def agent_digest(firmware):
    """What firmware/images/build.sh records: the SHA-256 of the agent's sources' `sha256sum` lines in C order."""
    paths = sorted([*(path.relative_to(firmware).as_posix() for path in (firmware / "tcagent").rglob("*.py")),
                    "main.py", "manifest.py"])
    lines = "".join(f"{hashlib.sha256((firmware / path).read_bytes()).hexdigest()}  {path}\n" for path in paths)
    return hashlib.sha256(lines.encode()).hexdigest()


def test_the_release_images_freeze_the_agent_of_this_tree():
    """Firmware changed without rebuilding the images would ship an older agent than the one tested: rebuild
    them (firmware/images/build.sh build and build-unix)."""
    recorded = re.findall(r"freeze the agent of sources digest `([0-9a-f]{64})`",
                          (ROOT / "firmware" / "images" / "README.md").read_text())
    assert len(recorded) == 2  # the Pico images and the Linux executables
    assert set(recorded) == {agent_digest(ROOT / "firmware")}
