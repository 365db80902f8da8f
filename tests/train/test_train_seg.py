"""train-seg through Ray Train with a real DeepSpeed engine and the GAN stage in Ray Data."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from ray.util.state import list_actors

from raylung.config import ConfigError, load_config
from raylung.networks import build_segmenter, export_model, load_generator, load_segmenter
from raylung.train.seg_runner import best_checkpoint, fit_seg

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]


def test_two_workers_zero_1_with_gan_stage_validate_and_export(seg_config, generator_file):
    config = seg_config("gan_aug", "scaling.num_workers=2", f"seg.generator={generator_file}",
                        "seg.p_synth=0.5", "deepspeed.zero_stage=1", "run.keep_checkpoints=2")
    result = fit_seg(config)
    assert result.error is None
    assert result.metrics["step"] == 4
    for key in ("loss_seg", "data_wait_fraction", "steps_per_s",
                "val_dice", "val_iou", "val_rim_dice", "val_hd95", "val_nsd"):
        assert key in result.metrics, key
    assert 0.0 <= result.metrics["val_rim_dice"] <= 1.0
    checkpoint, metrics = best_checkpoint(config, result)
    metrics_csv = pd.read_csv(Path(result.checkpoint.path).parent / "metrics.csv")
    assert metrics_csv["step"].tolist() == [1, 2, 3, 4]
    best_step = int(metrics_csv.loc[metrics_csv["val_dice"].idxmax(), "step"])
    assert metrics["step"] == best_step
    assert metrics["val_dice"] == pytest.approx(metrics_csv["val_dice"].max())
    model, saved = load_segmenter(Path(checkpoint, "segmenter.pt"))
    assert saved.seg.p_synth == 0.5 and saved.deepspeed.zero_stage == 1
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)
    assert Path(checkpoint, "validation.png").stat().st_size > 1000
    run = Path(result.checkpoint.path).parent
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_by"] == "val_dice" and summary["final_step"] == 4
    assert (summary["best_checkpoint"], summary["best_metrics"]["val_dice"]) == (
        checkpoint, metrics["val_dice"])
    assert len(summary["config_hash"]) == 12 and summary["wall_time_s"] > 0
    assert (run / "curves.png").stat().st_size > 1000
    # run.keep_checkpoints=2 of 4 checkpoints: the latest 2, and the best's copy in best/
    kept = {p.name for p in run.glob("checkpoint_*") if p.is_dir()}
    assert kept == {Path(c.path).name for c, _ in result.best_checkpoints}
    assert sorted(m["step"] for _, m in result.best_checkpoints) == [3, 4]
    assert [p.name for p in (run / "best").iterdir()] == [Path(checkpoint).name]
    best_files = {p.name for p in Path(checkpoint).iterdir()} - {"best.json"}
    assert best_files == {p.name for p in Path(result.checkpoint.path).iterdir()}
    # ZeRO-1 split the optimiser's state between the 2 ranks; the GAN stage synthesised
    shards = Path(checkpoint, "segmenter", "state").glob("zero_pp_rank_*_optim_states.pt")
    assert sorted(p.name.split("_")[3] for p in shards) == ["0", "1"]
    assert metrics_csv["synthetic_fraction"].max() > 0


def test_patch3d_with_pseudo_labels_validates_whole_cases(seg_config, phantom_store):
    """Also: the store given as a relative path, as users type it, while Ray Train runs its
    workers (which read the val scans) in a folder of their own."""
    config = seg_config("patch3d", "data.mode=patch3d", "data.patch_size=[8,24,24]",
                        "seg.pseudo_label=true", "seg.pseudo_threshold=0.6",
                        "scaling.num_workers=1", f"data.store={os.path.relpath(phantom_store.url)}")
    result = fit_seg(config)
    assert result.error is None
    for key in ("loss_pseudo", "pseudo_confident", "val_dice", "val_rim_dice"):
        assert key in result.metrics, key


def test_exported_segmenter_reloads_and_predicts_identically(tmp_path):
    config = load_config(None, ["seg.channels=[4,8,16]", "seg.strides=[2,2]",
                                "data.context_slices=1"])
    model = build_segmenter(config).eval()
    reloaded, saved = load_segmenter(export_model(model, config, tmp_path / "s.pt", "segmenter"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))
    assert saved == config
    with pytest.raises(ValueError, match="s.pt: not a raylung generator_h2p export"):
        load_generator(tmp_path / "s.pt")


@pytest.fixture(scope="module")
def twelve_steps(seg_config_in, generator_file, tmp_path_factory):
    """The overrides of a 12-step run with the GAN stage, 2 micro-batches per optimiser step
    (so the resume below crosses accumulated steps), and its uninterrupted result: the
    reference of the fault tests below."""
    overrides = ("seg.steps=12", "seg.decay_start=6", "seg.log_every=4", "scaling.num_workers=1",
                 "seg.val_cases=0", f"seg.generator={generator_file}", "seg.p_synth=0.5",
                 "deepspeed.grad_accum=2")
    straight = fit_seg(seg_config_in(tmp_path_factory.mktemp("straight"), "straight", *overrides))
    return overrides, straight


def test_interrupted_run_resumes_with_identical_weights(seg_config, twelve_steps,
                                                        kill_and_rerun, assert_same_weights):
    """Ctrl-C after the first checkpoint, then the same command (a killed worker, node or
    driver: the 2-worker test below and the GAN's on object storage)."""
    overrides, straight = twelve_steps
    stdout = kill_and_rerun("train-seg", seg_config("resumed", *overrides, "ray.num_cpus=2"), 12,
                            stop=signal.SIGINT)
    assert "train-seg: best step 12" in stdout
    assert_same_weights(load_segmenter(f"{straight.checkpoint.path}/segmenter.pt")[0],
                        load_segmenter(re.search(r"-> segmenter (\S+)", stdout)[1])[0])
    resumed = Path(re.search(r"-> segmenter (\S+)", stdout)[1]).parents[1]
    steps = pd.read_csv(resumed / "metrics.csv")["step"].tolist()
    assert steps == [2, 4, 6, 8, 10, 12], "one row per reported step, the kill's replaced"


def test_a_rerun_that_would_change_the_schedule_is_one_line(seg_config_in, twelve_steps):
    """The checkpoint's learning-rate schedule would win: 12 more steps at lr 0."""
    overrides, straight = twelve_steps
    runs = Path(straight.path).parent
    with pytest.raises(ConfigError, match=r"^run.name=straight resumes a run trained with "
                                          r"seg.steps=12, which a resume cannot change to 24: "
                                          r"keep it, or start a new run.name$"):
        fit_seg(seg_config_in(runs, "straight", *overrides, "seg.steps=24"))
    with pytest.raises(ConfigError, match=r"seg.lr=0.001, .* to 0.002"):
        fit_seg(seg_config_in(runs, "straight", *overrides, "seg.lr=0.002"))
    with pytest.raises(ConfigError, match=r"seg.p_synth=0.5, .* to 0.25"):  # G's share too
        fit_seg(seg_config_in(runs, "straight", *overrides, "seg.p_synth=0.25"))


def test_a_killed_worker_of_two_restarts_the_group_from_the_latest_checkpoint(
        seg_config, fit_killing_a_worker, assert_same_weights):
    """run.max_failures with 2 workers: one worker process killed right after a mid-run
    checkpoint; Ray Train restarts both from it and the same fit call finishes, with one
    metrics row per reported step and the weights of an uninterrupted 2-worker run (each
    worker reads its own fixed shard)."""
    overrides = ("seg.steps=12", "seg.decay_start=6", "seg.log_every=4", "scaling.num_workers=2",
                 "data.samples_per_epoch=8", "seg.val_cases=0", "run.max_failures=1")
    straight = fit_seg(seg_config("straight2", *overrides))
    result = fit_killing_a_worker(fit_seg, seg_config("recovered2", *overrides))
    assert result.error is None and result.metrics["step"] == 12
    steps = pd.read_csv(Path(result.checkpoint.path).parent / "metrics.csv")["step"].tolist()
    assert steps == [2, 4, 6, 8, 10, 12]
    assert_same_weights(load_segmenter(f"{straight.checkpoint.path}/segmenter.pt")[0],
                        load_segmenter(f"{result.checkpoint.path}/segmenter.pt")[0])


def test_killed_reader_and_gan_actors_are_restarted_by_ray_data(seg_config, twelve_steps,
                                                                assert_same_weights):
    """A crop reader and a GAN actor SIGKILLed as soon as they run: Ray Data restarts them
    and reruns their blocks, so the run neither fails nor changes (same weights as the
    uninterrupted run)."""
    overrides, straight = twelve_steps
    killed: list[str] = []
    killer = threading.Thread(target=_kill_data_actors, args=(("CropReader", "GanAugment"), killed))
    killer.start()
    result = fit_seg(seg_config("data_actors_killed", *overrides))
    killer.join()
    assert sorted(killed) == ["CropReader", "GanAugment"]
    assert result.error is None and result.metrics["step"] == 12
    assert_same_weights(load_segmenter(f"{straight.checkpoint.path}/segmenter.pt")[0],
                        load_segmenter(f"{result.checkpoint.path}/segmenter.pt")[0])


def _kill_data_actors(names: tuple[str, ...], killed: list[str], timeout: float = 300) -> None:
    """SIGKILL the first live Ray Data actor of each stage in ``names`` (by its UDF's name)."""
    deadline = time.monotonic() + timeout
    while len(killed) < len(names) and time.monotonic() < deadline:
        for actor in list_actors(filters=[("state", "=", "ALIVE")], detail=True):
            stage = next((n for n in names if n in (actor.repr_name or "")), None)
            if stage and stage not in killed and actor.pid:
                os.kill(actor.pid, signal.SIGKILL)
                killed.append(stage)
        time.sleep(0.05)

