"""``raylung train-gan``: the Ray Train run of the shape-aware CycleGAN.

The driver builds the two data streams and a ``TorchTrainer``; scaling (workers, GPUs, CPUs)
and storage come from the config, so a laptop, a sweep and a cluster run the same code.
Rerunning with the same ``run.name`` and ``run.storage_path`` resumes from the latest checkpoint.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import fsspec

import ray.data
import ray.train
from ray.train import DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from raylung.config import Config
from raylung.data.pipeline import build_dataset
from raylung.runtime import connect
from raylung.train.deepspeed_config import select_accelerator
from raylung.train.gan_loop import train_gan_worker


def fit_gan(config: Config) -> ray.train.Result:
    """Train the CycleGAN; returns Ray Train's result (its checkpoint holds the export)."""
    select_accelerator(config.scaling.use_gpu)
    connect(config.ray)
    per_epoch = steps_per_epoch(config)
    first_epoch = latest_step(config) // per_epoch
    epochs = range(first_epoch, math.ceil(config.gan.steps / per_epoch))
    datasets = {
        "healthy": build_dataset(config, "train", epochs, "healthy", labelled_only=True),
        "pathological": build_dataset(config, "train", epochs, "pathological"),
    }
    validation = _validation_dataset(config)
    if validation is not None:
        datasets["val"] = validation
    trainer = TorchTrainer(
        train_gan_worker,
        train_loop_config={"config": config.model_dump(mode="json"),
                           "first_step": first_epoch * per_epoch,
                           "validate": validation is not None},
        scaling_config=_scaling(config),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["healthy", "pathological"]),
        run_config=RunConfig(name=config.run.name, storage_path=_storage(config),
                             failure_config=FailureConfig(max_failures=0)),
    )
    return trainer.fit()


def _validation_dataset(config: Config) -> ray.data.Dataset | None:
    """Fixed healthy samples of the val split (one epoch, same every run), if there are any."""
    if config.gan.val_samples == 0:
        return None
    val = config.model_copy(deep=True)
    val.data.samples_per_epoch = config.gan.val_samples
    val.data.augment.enabled = False
    try:
        return build_dataset(val, "val", [0], "healthy", labelled_only=True)
    except ValueError as err:
        print(f"train-gan: validation skipped: {err}", file=sys.stderr)
        return None


def steps_per_epoch(config: Config) -> int:
    """Optimiser steps per data epoch; an epoch must split evenly into worker batches."""
    per_step = config.data.batch_size * config.scaling.num_workers
    if config.data.samples_per_epoch % per_step:
        raise ValueError(f"data.samples_per_epoch={config.data.samples_per_epoch} must be a "
                         f"multiple of data.batch_size x scaling.num_workers = {per_step}")
    return config.data.samples_per_epoch // per_step


def latest_step(config: Config) -> int:
    """The step of the newest checkpoint Ray Train registered for this run (0 for a new run)."""
    fs, root = fsspec.core.url_to_fs(_storage(config))
    snapshot = f"{root}/{config.run.name}/checkpoint_manager_snapshot.json"
    if not fs.exists(snapshot):
        return 0
    results = json.loads(fs.cat_file(snapshot))["checkpoint_results"]
    return max((int(r["metrics"]["step"]) for r in results), default=0)


def _scaling(config: Config) -> ScalingConfig:
    scaling = config.scaling
    resources = {"CPU": scaling.cpus_per_worker, **({"GPU": 1} if scaling.use_gpu else {})}
    return ScalingConfig(num_workers=scaling.num_workers, use_gpu=scaling.use_gpu,
                         resources_per_worker=resources)


def _storage(config: Config) -> str:
    path = config.run.storage_path
    return path if "://" in path else str(Path(path).resolve())
