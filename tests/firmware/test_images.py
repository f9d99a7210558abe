"""The committed binaries are the ones their READMEs record: firmware images and the RP2040 boot ROM.

An image rebuilt or replaced without its record (tools/images/build.sh rewrites it) fails here, and so does a
record of a file that is not there.
"""

import hashlib
import re

import pytest

from conftest import ROOT

RECORDS = {
    ROOT / "firmware" / "images": "*.uf2",
    ROOT / "tools" / "rp2040": "*.bin",
}
ROW = re.compile(r"^\| (?P<file>[\w.-]+\.(?:uf2|bin)) \| (?P<bytes>\d+) \| (?P<sha256>[0-9a-f]{64}) \|$", re.M)


def recorded(folder):
    return {match["file"]: (int(match["bytes"]), match["sha256"])
            for match in ROW.finditer((folder / "README.md").read_text())}


@pytest.mark.parametrize("folder", sorted(RECORDS), ids=lambda folder: str(folder.relative_to(ROOT)))
def test_every_binary_is_the_one_its_readme_records(folder):
    record = recorded(folder)
    files = {path.name: path.read_bytes() for path in folder.glob(RECORDS[folder])}
    assert files, f"no {RECORDS[folder]} in {folder}"
    assert sorted(record) == sorted(files), (
        f"{folder}/README.md records {sorted(record)}, the folder holds {sorted(files)}")
    for name, data in files.items():
        assert (len(data), hashlib.sha256(data).hexdigest()) == record[name], (
            f"{folder.name}/{name} is not the file its README records (tools/images/build.sh record rewrites it)")


def test_the_pico_images_are_there():
    names = recorded(ROOT / "firmware" / "images")
    assert "RPI_PICO-v1.28.0-base.uf2" in names  # the one the RP2040 model test boots
    assert "RPI_PICO-v1.28.0-release.uf2" in names
