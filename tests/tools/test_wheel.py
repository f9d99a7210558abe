"""The wheel holds what an operator or technician installs and nothing of the checkout's: built offline from a
copy of this tree, it has the gateway, the tools and the firmware package, not the test harness, benchmarks, soaks,
demo or tests; every console script's module is in it; and installed into a fresh environment (the dependencies
taken from this one, the repository out of reach), every installed command starts and every installed module
imports."""

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

INSTALLED = {"gateway", "tools", "tcagent"}
CHECKOUT_ONLY = {"harness", "benchmarks", "soaks", "demo", "hil_tests", "tests"}
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
_NOT_COPIED = shutil.ignore_patterns(".git", ".venv", "node_modules", "__pycache__", "build", "dist", "*.egg-info",
                                     "artifacts", ".*_cache", ".hypothesis")


def _run(command, **options):
    environment = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300,
                          env=environment, **options)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel pip builds from a copy of the tree (pip writes build/ and egg-info into the folder it builds)."""
    work = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, work / "source", ignore=_NOT_COPIED)
    done = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                 "--quiet", "--wheel-dir", work / "dist", work / "source"])
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (work / "dist").glob("*.whl")
    return zipfile.ZipFile(built)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh environment with the wheel installed; its dependencies come from this environment's site-packages
    by path alone (so its .pth files, the checkout's editable install among them, do not run)."""
    folder = tmp_path_factory.mktemp("installed") / "env"
    venv.create(folder, with_pip=False, symlinks=True)
    python = folder / "bin" / "python"
    done = _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--quiet",
                 wheel.filename])
    assert done.returncode == 0, done.stdout + done.stderr
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return folder


def test_the_wheel_holds_the_installed_packages_and_none_of_the_checkout_s(wheel):
    names = wheel.namelist()
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == INSTALLED
    assert "tools/provision.py" in names and "tcagent/__init__.py" in names
    assert [name for name in names if name.startswith("tools/") and not name.endswith(".py")] == []  # no scripts


def test_nothing_installed_imports_the_checkout_s_folders_even_inside_a_function(wheel):
    """What the run below cannot reach: imports made only on some paths (trace-provision's TLS, trace-flash pico)."""
    found = []
    for name in wheel.namelist():
        if name.endswith(".py") and name.split("/")[0] in ("gateway", "tools"):
            for node in ast.walk(ast.parse(wheel.read(name), name)):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                found += [f"{name}: {module}" for module in modules if module.split(".")[0] in CHECKOUT_ONLY]
    assert found == []


def test_every_console_script_s_module_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    lines = wheel.read(entry_points).decode().split("[console_scripts]")[1].split("\n[")[0].splitlines()
    scripts = dict(line.replace(" ", "").split("=", 1) for line in lines if "=" in line)
    assert scripts == SCRIPTS
    for target in scripts.values():
        module = target.split(":")[0].replace(".", "/")
        assert f"{module}.py" in names or f"{module}/__init__.py" in names, target


def test_the_checkout_is_out_of_reach_of_the_installed_environment(installed, tmp_path):
    """So that the commands starting below shows they need nothing of the checkout."""
    done = _run([installed / "bin" / "python", "-c", "import harness"], cwd=tmp_path)
    assert done.returncode != 0 and "No module named 'harness'" in done.stderr
    done = _run([installed / "bin" / "python", "-c", "import gateway, tcagent, tools\n"
                 "print(tools.__file__, gateway.__file__, tcagent.__file__)"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert all(path.startswith(str(installed)) for path in done.stdout.split()), done.stdout


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_installed_command_starts(installed, tmp_path, script):
    done = _run([installed / "bin" / script, "--help"], cwd=tmp_path)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stdout + done.stderr


def test_every_installed_module_of_the_gateway_and_the_tools_imports(installed, tmp_path):
    code = ("import importlib, pkgutil, gateway, tools\n"
            "for package in (gateway, tools):\n"
            "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
            "        importlib.import_module(module.name)\n"
            "        print(module.name)\n")
    done = _run([installed / "bin" / "python", "-c", code], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tools.provision" in done.stdout.split() and "tools.certs" in done.stdout.split()


def test_the_wheel_holds_every_module_of_the_firmware_package(wheel):
    """tcagent whole (codec and hal too), as the checkout has it: trace-decode and the provisioning checks use it."""
    shipped = {name for name in wheel.namelist() if name.startswith("tcagent/") and name.endswith(".py")}
    source = ROOT / "firmware"
    assert shipped == {path.relative_to(source).as_posix() for path in (source / "tcagent").rglob("*.py")}


def test_trace_flash_installed_without_a_checkout_says_so_in_one_line(installed, tmp_path):
    """The wheel holds the tools, not main.py or the images: putting firmware on a board runs from a checkout."""
    (tmp_path / "config.json").write_text("{}")
    done = _run([installed / "bin" / "trace-flash", "pico", "--config", tmp_path / "config.json"], cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("trace-flash: no firmware folder") and "from a checkout" in done.stderr
