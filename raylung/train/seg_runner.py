"""``raylung train-seg``: the Ray Train run of the U-Net segmenter with GAN augmentation.

The training stream draws labelled samples (healthy only by default), a share ``seg.p_synth``
of which a Ray Data actor pool turns pathological with the exported generator on the way;
``seg.p_synth=0`` (or no ``seg.generator``) is the plain baseline. Same config, checkpoint,
resume and logging machinery as ``train-gan`` (raylung/train/runner.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ray.train
from ray.train import UserCallback

from raylung.config import Config, ConfigError
from raylung.data.pipeline import build_shards, check_sources, select_cases, with_store_ingest
from raylung.data.synth import add_synthesis, check_generator
from raylung.store.case_store import CaseStore
from raylung.train.keep_best import kept_best
from raylung.train.runner import (check_accumulation, check_divisible, check_placement,
                                  check_resume, checkpoint_folder, crop_size, fit, per_worker,
                                  resume_epochs, run_folder, start_ray, steps_per_epoch,
                                  val_cases)
from raylung.train.seg_loop import train_seg_worker

BEST_METRIC = "val_dice"


def fit_seg(config: Config, callbacks: Sequence[UserCallback] = (),
            progress: bool = True) -> ray.train.Result:
    """Train the segmenter; returns Ray Train's result (its checkpoints hold ``segmenter.pt``);
    ``progress`` prints rank 0's line at every report on this console."""
    check_accumulation(config, {"seg.steps": config.seg.steps,
                                "the steps of an epoch (data.samples_per_epoch / "
                                "data.batch_size / scaling.num_workers)": steps_per_epoch(config)})
    # and the share of G's samples: a generator alone meant 0 until it meant 0.5
    check_resume(config, ("seg.steps", "seg.decay_start", "seg.lr", "seg.p_synth"))
    check_divisible(*crop_size(config), math.prod(config.seg.strides),
                    f"the U-Net's strides {list(config.seg.strides)} divide it")
    config = with_store_ingest(config)
    if config.seg.generator:
        check_generator(config)
    if config.data.twin_p > 0:
        _check_twins(config)
    start_ray(config)
    check_placement(config, "U-Net run", gan_actors=bool(config.seg.generator))
    stream = _stream_config(config)
    epochs, first_step = resume_epochs(config, config.seg.steps)
    domain = "healthy" if config.seg.train_on == "healthy" else None
    world = config.scaling.num_workers
    train = build_shards(stream, "train", epochs, domain, True, world)
    streams = {"train": [add_synthesis(shard, config) for shard in train]
               if config.seg.generator else train}
    if config.seg.pseudo_label:
        streams["unlabelled"] = build_shards(stream, "train", epochs, "pathological", world=world)
    datasets = per_worker(streams)
    loop = {"first_step": first_step, "steps_per_epoch": steps_per_epoch(config),
            "validate": _can_validate(config)}
    return fit(config, train_seg_worker, datasets, loop, callbacks, progress, BEST_METRIC)


def _check_twins(config: Config) -> None:
    """``data.twin_p`` reads diseased twins, which only phantom stores hold: without any, the
    run would train without the oracle, and nothing would say so."""
    store = CaseStore(config.data.store, config.storage.storage_options)
    cases = select_cases(store, config.data, "train", "healthy", labelled_only=True)
    if not any("twin" in store.open_case(case).array_keys() for case in cases["case_id"]):
        raise ConfigError(f"data.twin_p: no labelled healthy train case of {config.data.store} "
                          "has a diseased twin (phantoms written with phantom.twins=true have)")


def best_checkpoint(config: Config, result: ray.train.Result) -> tuple[str, dict]:
    """The folder (path or URL) of the kept copy of the checkpoint with the best pathological
    val Dice, and its metrics; the latest checkpoint when the run did not validate."""
    return (kept_best(run_folder(config), config.storage.storage_options)
            or (checkpoint_folder(config, result.checkpoint), result.metrics))


def _can_validate(config: Config) -> bool:
    """Whether there are pathological val scans to score, whose source files are still there
    (validation reads the scans ingest read); the reason on stderr when there are none."""
    if config.seg.val_cases == 0:
        return False
    cases = val_cases(config, "pathological", "validation skipped")
    if cases is None:
        return False
    check_sources(cases.head(config.seg.val_cases), "val")
    return True


def _stream_config(config: Config) -> Config:
    """The data settings of the segmenter's streams: no surround band (no loss needs it)."""
    stream = config.model_copy(deep=True)
    stream.data.surround_mm = 0.0
    return stream
