"""train-gan through Ray Train with real DeepSpeed engines on 2 CPU workers (gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from raylung.config import load_config
from raylung.train.export import load_generator
from raylung.train.runner import fit_gan, latest_step

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]


def _config(store, tmp_path, name, *extra):
    return load_config(None, [
        f"data.store={store.url}", "data.slice_size=[32,32]", "data.batch_size=2",
        "data.samples_per_epoch=4", "data.split_fractions=[1,0,0]", "data.reader_cpus=0.25",
        "data.read_concurrency=1", "gan.width=4", "gan.n_blocks=1", "gan.disc_width=4",
        "gan.disc_layers=2", "gan.steps=2", "gan.decay_start=1", "gan.log_every=1",
        "gan.checkpoint_every=2", "scaling.cpus_per_worker=0.5",
        f"run.name={name}", f"run.storage_path={tmp_path / 'runs'}", *extra])


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_two_workers_each_zero_stage(phantom_store, tmp_path, stage):
    config = _config(phantom_store, tmp_path, f"zero{stage}", f"deepspeed.zero_stage={stage}",
                     "scaling.num_workers=2")
    result = fit_gan(config)
    assert result.error is None
    assert result.metrics["step"] == 2
    for key in ("loss_adv", "loss_cyc", "loss_id", "loss_surround", "loss_d",
                "data_wait_fraction", "steps_per_s"):
        assert key in result.metrics
    generator, saved = load_generator(f"{result.checkpoint.path}/generator_h2p.pt")
    assert saved.deepspeed.zero_stage == stage
    assert generator(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_validation_scores_and_draws_held_out_healthy_samples(phantom_store, tmp_path):
    config = _config(phantom_store, tmp_path, "val", "data.split_fractions=[0.5,0.5,0]",
                     "gan.val_samples=2", "scaling.num_workers=1")
    result = fit_gan(config)
    for key in ("val_surround_l1_hu", "val_change_outside_body_hu", "val_change_in_lung_hu",
                "val_shape_dice"):
        assert key in result.metrics
    assert 0.0 <= result.metrics["val_shape_dice"] <= 1.0
    assert Path(result.checkpoint.path, "validation.png").stat().st_size > 1000


def test_killed_run_resumes_with_identical_weights(phantom_store, tmp_path):
    """A run killed after its first checkpoint and rerun ends with the weights of a run that
    never stopped: same step count, optimiser, LR schedule, image pools and data."""
    overrides = ["gan.steps=40", "gan.decay_start=20", "gan.checkpoint_every=10",
                 "gan.log_every=10", "scaling.num_workers=1"]
    straight = fit_gan(_config(phantom_store, tmp_path, "straight", *overrides))
    config = _config(phantom_store, tmp_path, "resumed", *overrides, "ray.num_cpus=2")
    cli = [str(Path(sys.executable).parent / "raylung"), "train-gan",
           *(f"{k}={v}" for k, v in _flat(config.model_dump(mode="json")))]
    snapshot = tmp_path / "runs" / "resumed" / "checkpoint_manager_snapshot.json"
    proc = subprocess.Popen(cli, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not snapshot.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 10 <= latest_step(config) < 40, "the kill should land mid-run"
    rerun = subprocess.run(cli, capture_output=True, encoding="utf-8", timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "train-gan: step 40" in rerun.stdout
    a, _ = load_generator(f"{straight.checkpoint.path}/generator_h2p.pt")
    b, _ = load_generator(Path(rerun.stdout.split("generator ")[-1].strip()))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), name


def _flat(tree, prefix=""):
    """key=value pairs of a nested config dict, in dotted form."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", json.dumps(value)
