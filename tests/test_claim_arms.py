"""benchmarks/claim.py's arm schedule and row cache, without training: rows in the arms'
order whatever finishes first, an arm that exits stops the claim, and a row is reused only
for the same settings."""

from __future__ import annotations

import importlib
import json
import sys
import threading
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def claim(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as `python benchmarks/claim.py` has it
    return importlib.import_module("claim")


def test_two_arms_at_once_rows_in_order(claim):
    second_started = threading.Event()

    def first() -> dict:  # finishes after the second has started: both ran at once
        assert second_started.wait(timeout=60)
        return {"arm": "first"}

    def second() -> dict:
        second_started.set()
        return {"arm": "second"}
    assert claim._at_once(2, [first, second]) == [{"arm": "first"}, {"arm": "second"}]


def test_an_arm_that_exits_starts_no_further_arm(claim):
    started = []

    def arm(name: str, fails: bool = False):
        def run() -> dict:
            started.append(name)
            if fails:
                sys.exit(f"claim: arm {name} failed")
            return {"arm": name}
        return run
    with pytest.raises(SystemExit, match="arm b failed"):
        claim._at_once(1, [arm("a"), arm("b", fails=True), arm("c"), arm("d")])
    assert started == ["a", "b"]


def test_a_row_of_another_validation_spacing_is_not_reused(claim, monkeypatch, tmp_path):
    """A U-Net arm's samples per epoch (its validation spacing) is part of its row's key."""
    base = claim._base(tmp_path, *claim.SCALES["quick"], gpu_arms=0)
    arm = ["(a) none", claim.SEG_ARMS["(a) none"]]
    monkeypatch.setattr(claim, "fit_seg", lambda config: sys.exit(
        f"trained with {config.data.samples_per_epoch} samples per epoch"))
    with pytest.raises(SystemExit, match="with 120 samples per epoch"):
        claim._seg_arm(base, "", *arm, 0, tmp_path)
    row = tmp_path / "rows" / "seg_a__none_0.json"
    settings = [*base, *arm[1], "seg.seed=0", "data.seed=0", "data.samples_per_epoch=120"]
    claim._write_atomic(row, json.dumps({"arm": "(a) none", "settings": settings}))
    assert claim._seg_arm(base, "", *arm, 0, tmp_path) == {"arm": "(a) none"}
    monkeypatch.setattr(claim, "SEG_MIN_EPOCH", 8)
    with pytest.raises(SystemExit, match="holds a row of other settings"):
        claim._seg_arm(base, "", *arm, 0, tmp_path)


@pytest.mark.parametrize("arms", [1, 2, 4])
def test_arms_at_once_on_a_gpu_fit_it(claim, tmp_path, arms):
    """``--gpu --parallel N``: N arms' trainers and G actors together reserve one GPU."""
    from raylung.config import load_config

    config = load_config(None, claim._base(tmp_path, *claim.SCALES["gpu"], gpu_arms=arms))
    assert config.scaling.use_gpu
    assert (config.scaling.gpus_per_worker + config.seg.synth_gpus) * arms == pytest.approx(1.0)
