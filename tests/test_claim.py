"""benchmarks/claim.py end to end at toy scale: every GAN arm, every U-Net arm and seed, the
figure, a rerun that reuses the finished arms, and one with other settings that refuses to.
Ten Ray Train runs, two at a time, take about 4 minutes on 2 cores, so it is not in the default
run: ``pytest -m benchmark``."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

CLAIM = Path(__file__).parents[1] / "benchmarks" / "claim.py"
TOY = ["phantom.cases=8", "phantom.size=96", "phantom.slices=[16,20]", "gan.steps=4",
       "gan.decay_start=4", "gan.val_samples=2", "gan.val_pathological=2", "seg.steps=4",
       "seg.decay_start=2", "seg.val_cases=1", "data.samples_per_epoch=16", "ray.num_cpus=2"]

pytestmark = [pytest.mark.slow, pytest.mark.benchmark, pytest.mark.usefixtures("ray_cluster")]


def _claim(tmp_path: Path, monkeypatch, capsys, *extra: str) -> str:
    monkeypatch.setattr(sys, "argv", [str(CLAIM), "--quick", "--seeds", "2", "--workdir",
                                      str(tmp_path / "work"), "--out", str(tmp_path / "out"),
                                      *TOY, *extra])
    monkeypatch.syspath_prepend(str(CLAIM.parent))  # as `python benchmarks/claim.py` has it
    runpy.run_path(str(CLAIM), run_name="__main__")
    return capsys.readouterr().out


def test_claim_quick_has_every_arm_and_seed(tmp_path, monkeypatch, capsys):
    printed = _claim(tmp_path, monkeypatch, capsys)
    gan = pd.read_csv(tmp_path / "out" / "claim_gan.csv")
    seg = pd.read_csv(tmp_path / "out" / "claim_seg.csv")
    assert list(gan["arm"]) == ["surround 0", "default"]
    assert list(gan["lambda_surround"]) == [0.0, 12.0]
    assert gan[["val_translation", "val_surround_l1_hu", "val_wall_dice"]].notna().all().all()
    arms = ["(a) none", "(b) classical", "(c) classical + GAN", "(d) classical + oracle"]
    assert sorted(zip(seg["arm"], seg["seed"])) == sorted((a, s) for a in arms for s in (0, 1))
    assert seg[["dice", "rim_dice", "lesion_inclusion", "hd95_mm"]].notna().all().all()
    assert (tmp_path / "out" / "claim.png").stat().st_size > 0
    assert "targets" in printed and "(d) - (a) lesion inclusion" in printed
    again = _claim(tmp_path, monkeypatch, capsys)  # every arm's row is reused, none retrained
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "claim_seg.csv"), seg)
    assert "claim:" in again
    with pytest.raises(SystemExit, match="holds a row of other settings; pass another"):
        _claim(tmp_path, monkeypatch, capsys, "seg.steps=6")  # would resume the 4-step runs
