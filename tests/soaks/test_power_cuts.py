"""Power cuts of a plain Pico in the RP2040 model while its agent journals scans (soaks/power_cuts.py): the CPU
stops at a random instruction, weighted toward the journal's appends and littlefs's programs and erases, the
flash stays as it was, a fresh model boots from it, and nothing signalled "taken" is lost, doubled or torn.

50 cuts here (about 2 minutes on 2 cores); `python -m soaks.power_cuts --cuts 1000` runs the long soak
(docs/benchmarks.md). The seed is random and printed: TC_POWER_CUT_SEED=N repeats a run's choices.
"""

import os

import pytest

from harness.pico_model import model_available
from soaks import power_cuts

CUTS = 50


@pytest.fixture
def model():
    reason = model_available()
    if reason is not None:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI runs the RP2040 model (tools/test.sh installs it): {reason}")
        pytest.skip(reason)


def test_fifty_power_cuts_lose_double_or_tear_nothing_signalled_taken(model, capsys):
    seed = int(os.environ["TC_POWER_CUT_SEED"]) if "TC_POWER_CUT_SEED" in os.environ else None
    with capsys.disabled():
        summary = power_cuts.run_cuts(CUTS, workers=2, chain=25, seed=seed,
                                      progress=lambda text: print("\n" + text, end="", flush=True))
        print(f"\npower cuts in the RP2040 model: {summary.line()}; {summary.seconds:.0f} s")
    assert summary.failures == []
    assert summary.cuts == CUTS and summary.boots >= CUTS - summary.where["boot"]
    assert summary.taken >= CUTS / 2  # scans signalled before their cut, each found once in the journal
    # the weighting: most cuts land while a scan is being taken, many inside a page program or a sector erase
    assert summary.where["scan"] > CUTS / 2
    assert summary.flash["program"] + summary.flash["erase"] >= CUTS / 5
    assert summary.records > summary.taken


def test_the_soak_command_prints_progress_and_counts(model, capsys):
    assert power_cuts.main(["--cuts", "2", "--workers", "1", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "power cuts: 2 in 1 models" in out and "seed 7" in out
    assert "done in" in out and "2 cuts, 0 failed" in out and "scans signalled taken" in out
