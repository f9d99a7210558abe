"""trace-decode, the technicians' decoder: arguments, standard input, exit status, errors."""

import json
import shutil
import subprocess

import pytest


def run(*args, stdin=b""):
    command = shutil.which("trace-decode")
    assert command, "trace-decode is not installed (pip install -e .)"
    return subprocess.run([command, *args], input=stdin, capture_output=True, timeout=30)


def test_arguments_with_gs_token():
    result = run("]d2010690123456789217261200102AB<GS>21XYZ123", "81234567890123456789")
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["kind"] == "gs1" and first["serial"] == "XYZ123" and first["lot"] == "2AB"
    assert first["elements"] == [["01", "06901234567892"], ["17", "261200"], ["10", "2AB"], ["21", "XYZ123"]]
    assert second == {**second, "kind": "digits20", "pid": "8123456", "valid": True, "error": "ok"}


def test_stdin_raw_bytes_and_exit_status_for_invalid():
    result = run(stdin=b"]d2010690123456789321X\r\n\r\n6901234567892\n")
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["error"] for line in lines] == ["gs1_check_digit", "commodity_ean"]
    assert "expected 2, got 3" in lines[0]["detail"]


def test_today_marks_expired_and_forms_switch():
    result = run("--today", "270101", "--gs1-form", "bracketed", "]d2010690123456789217261200102AB<GS>21XYZ123")
    line = json.loads(result.stdout)
    assert line["error"] == "expired" and line["code"].startswith("(01)06901234567892(17)261200")


@pytest.mark.parametrize("args", [["--today", "2026-01-01", "x"], ["--gs1-form", "nope", "x"]])
def test_usage_errors(args):
    result = run(*args)
    assert result.returncode == 2 and b"usage" in result.stderr
