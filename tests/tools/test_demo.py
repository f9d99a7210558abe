"""The README's first command: the demo runs end to end and shows each stage."""

import subprocess
import sys

from conftest import ROOT


def test_demo_runs_and_refuses_the_tampered_message():
    result = subprocess.run([sys.executable, "-m", "tools.demo"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "signed on the micropython executable" in out
    assert '"serial": "XYZ123"' in out
    assert "tampered: refused, reason 'bad_mac'" in out
    assert "wrong topic: refused, reason 'kid_mismatch'" in out
    assert "expired" in out and "gs1_check_digit" in out
