"""``raylung train-seg``: the Ray Train run of the U-Net segmenter with GAN augmentation.

The training stream draws labelled samples (healthy only by default), a share ``seg.p_synth``
of which a Ray Data actor pool turns pathological with the exported generator on the way;
``seg.p_synth=0`` (or no ``seg.generator``) is the plain baseline. Same config, checkpoint,
resume and logging machinery as ``train-gan`` (raylung/train/runner.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import ray.data
import ray.train
from ray.train import UserCallback

from raylung.config import Config
from raylung.data.pipeline import build_dataset, check_sources, select_cases
from raylung.data.synth import add_synthesis
from raylung.store.case_store import CaseStore
from raylung.train.runner import fit, per_worker, resume_epochs, start_ray, steps_per_epoch
from raylung.train.seg_loop import train_seg_worker

BEST_METRIC = "val_dice"


def fit_seg(config: Config, callbacks: Sequence[UserCallback] = (),
            progress: bool = True) -> ray.train.Result:
    """Train the segmenter; returns Ray Train's result (its checkpoints hold ``segmenter.pt``);
    ``progress`` prints rank 0's line at every report on this console."""
    start_ray(config)
    stream = _stream_config(config)
    epochs, first_step = resume_epochs(config, config.seg.steps)
    domain = "healthy" if config.seg.train_on == "healthy" else None

    def streams(shard: tuple[int, int]) -> dict[str, ray.data.Dataset]:
        train = build_dataset(stream, "train", epochs, domain, True, shard)
        datasets = {"train": add_synthesis(train, config) if config.seg.generator else train}
        if config.seg.pseudo_label:
            datasets["unlabelled"] = build_dataset(stream, "train", epochs, "pathological",
                                                   shard=shard)
        return datasets

    datasets = per_worker(config, streams)
    loop = {"first_step": first_step, "steps_per_epoch": steps_per_epoch(config),
            "validate": _can_validate(config)}
    return fit(config, train_seg_worker, datasets, loop, callbacks, progress, BEST_METRIC)


def best_checkpoint(result: ray.train.Result) -> tuple[ray.train.Checkpoint, dict]:
    """The checkpoint with the best pathological val Dice (the latest one without validation)."""
    scored = [(c, m) for c, m in result.best_checkpoints if BEST_METRIC in m]
    if not scored:
        return result.checkpoint, result.metrics
    return max(scored, key=lambda pair: pair[1][BEST_METRIC])


def _can_validate(config: Config) -> bool:
    """Whether there are pathological val scans to score, whose source files are still there
    (validation reads the scans ingest read); the reason on stderr when there are none."""
    if config.seg.val_cases == 0:
        return False
    store = CaseStore(config.data.store, config.storage.storage_options)
    try:
        cases = select_cases(store, config.data, "val", "pathological", labelled_only=True)
    except ValueError as err:
        print(f"raylung train-seg: validation skipped: {err}", file=sys.stderr)
        return False
    check_sources(cases.head(config.seg.val_cases), "val")
    return True


def _stream_config(config: Config) -> Config:
    """The data settings of the segmenter's streams: no surround band (no loss needs it)."""
    stream = config.model_copy(deep=True)
    stream.data.surround_mm = 0.0
    return stream
