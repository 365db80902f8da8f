"""A segmenter trained a few steps through ``raylung train-seg``, with half the phantoms held
out as the test split (so the run also writes its test report)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RAYLUNG = str(Path(sys.executable).parent / "raylung")


@pytest.fixture(scope="session")
def trained_seg(phantom_store, ray_cluster, tmp_path_factory):
    """(run folder, completed ``raylung train-seg`` process) of a 16-step U-Net on 32x32
    slices; one healthy and one pathological phantom are its test split."""
    runs = tmp_path_factory.mktemp("seg_runs")
    out = subprocess.run(
        [RAYLUNG, "train-seg", f"data.store={phantom_store.url}", "data.slice_size=[32,32]",
         "data.batch_size=2", "data.samples_per_epoch=8", "data.split_fractions=[0.5,0,0.5]",
         "data.reader_cpus=0.25", "data.read_concurrency=1", "seg.channels=[4,8]",
         "seg.strides=[2]", "seg.num_res_units=1", "seg.steps=16", "seg.decay_start=8",
         "seg.log_every=4", "seg.val_cases=0", "scaling.cpus_per_worker=0.5",
         "run.name=seg", f"run.storage_path={runs}"],
        capture_output=True, encoding="utf-8", timeout=600)
    assert out.returncode == 0, out.stderr
    return runs / "seg", out


@pytest.fixture(scope="session")
def segmenter_file(trained_seg) -> Path:
    """The exported segmenter.pt of the trained run's last checkpoint."""
    return sorted(trained_seg[0].glob("checkpoint_*/segmenter.pt"))[-1]
