"""Ray Train runs of raylung's trainers, and ``raylung train-gan`` (the shape-aware CycleGAN).

The driver builds the data streams and a ``TorchTrainer``; scaling (workers, GPUs, CPUs)
and storage come from the config, so a laptop, a sweep and a cluster run the same code.
Rerunning with the same ``run.name`` and ``run.storage_path`` resumes from the latest checkpoint.
"""

from __future__ import annotations

import math
import time
import sys
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any

import fsspec
import pandas as pd
import pyarrow.fs
import yaml

import ray.data
import ray.train
from ray.train import (CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig,
                       UserCallback)
from ray.train.torch import TorchTrainer

from raylung.config import Config, ConfigError, flat_items
from raylung.console import train_logging
from raylung.data.pipeline import NoCasesError, build_shards, select_cases, with_store_ingest
from raylung.models.discriminator import min_input_size
from raylung.models.generator import N_DOWN
from raylung.runtime import connect, poll_reports_often
from raylung.store.case_store import CaseStore
from raylung.train.deepspeed_config import select_accelerator
from raylung.train.gan_loop import train_gan_worker
from raylung.train.keep_best import KeepBest, checkpoint_url
from raylung.train.metrics_log import finish_logging, logging_callbacks
from raylung.train.progress import printed_progress
from raylung.train.run_summary import write_run_summary
from raylung.train.streams import rank_stream


def fit_gan(config: Config, callbacks: Sequence[UserCallback] = (),
            progress: bool = True) -> ray.train.Result:
    """Train the CycleGAN; returns Ray Train's result (its checkpoint holds the export).

    ``callbacks`` join the run's own (e.g. Tune's ``TuneReportCallback`` inside a trial);
    ``progress`` prints rank 0's line at every report on this console."""
    check_gan_crops(config)
    check_accumulation(config, {"gan.steps": config.gan.steps,
                                "gan.checkpoint_every": config.gan.checkpoint_every})
    check_resume(config, ("gan.steps", "gan.decay_start", "gan.lr"))
    config = with_store_ingest(config)
    start_ray(config)
    check_placement(config, "GAN run")
    epochs, first_step = resume_epochs(config, config.gan.steps)
    datasets = per_worker(gan_shards(config, epochs, config.scaling.num_workers))
    return fit(config, train_gan_worker, datasets, {"first_step": first_step,
                                                    "validate": can_validate(config)},
               callbacks, progress)


def check_gan_crops(config: Config) -> None:
    """Crops the networks take (one line now, not a failure in every worker and restart):
    ``gan.disc_layers`` halvings must leave the discriminators a patch map, and G's
    downsamplings must divide them."""
    key, size = crop_size(config)
    smallest = min_input_size(config.gan.disc_layers)
    if min(size) < smallest:
        raise ConfigError(f"data.{key}={list(size)} is too small for gan.disc_layers="
                          f"{config.gan.disc_layers}: the discriminators need at least "
                          f"{smallest} per axis")
    check_divisible(key, size, 2**N_DOWN, f"G halves it {N_DOWN} times")


def worker_resources(config: Config, gan_actors: bool = True) -> dict[str, tuple[float, float]]:
    """The CPUs and GPUs one Ray Train worker holds with its actors, per trainer: a GAN run's
    worker with both domains' crop readers, a U-Net run's with its crop readers (a second
    stream with pseudo-labels) and, with ``gan_actors``, its GAN actors."""
    scaling, data, seg = config.scaling, config.data, config.seg
    readers = data.read_concurrency * data.reader_cpus  # per stream of a worker
    gpus = scaling.gpus_per_worker if scaling.use_gpu else 0.0
    actors = seg.synth_actors if gan_actors else 0
    return {"GAN run": (scaling.cpus_per_worker + 2 * readers, gpus),
            "U-Net run": (scaling.cpus_per_worker + (1 + seg.pseudo_label) * readers
                          + actors * seg.synth_cpus, gpus + actors * seg.synth_gpus)}


def check_placement(config: Config, run: str, who: str = "the", driver_cpus: float = 0.0,
                    gan_actors: bool = True) -> None:
    """A ``run`` ("GAN run", "U-Net run") the cluster cannot hold would wait forever, since
    Ray Data's fixed actor pools wait for their actors without a timeout: one line instead.
    A cluster named by ``ray.address`` (``cluster/gpu.yaml``) may be one an autoscaler grows,
    which the nodes up now do not show: it is not checked."""
    if config.ray.address:
        return
    cpus, gpus = worker_resources(config, gan_actors)[run]
    have = ray.cluster_resources()
    for kind, amount in (("CPU", driver_cpus + config.scaling.num_workers * cpus),
                         ("GPU", config.scaling.num_workers * gpus)):
        if amount > have.get(kind, 0):
            parts = f"{'driver, ' if driver_cpus else ''}workers, crop readers" + (
                " and GAN actors" if run == "U-Net run" and gan_actors else "")
            raise ConfigError(
                f"scaling: {who} {run} needs {amount:g} {kind}s ({parts}) but the cluster has "
                f"{have.get(kind, 0):g} (on one machine: --config cluster/laptop.yaml, or "
                "fewer data.read_concurrency / data.reader_cpus; on a cluster that an "
                "autoscaler grows, set ray.address)")


def check_divisible(key: str, size: Sequence[int], divisor: int, why: str) -> None:
    """One line unless every axis of crop ``size`` (``data.<key>``) is a multiple of
    ``divisor``."""
    if any(side % divisor for side in size):
        raise ConfigError(f"data.{key}={list(size)} must be a multiple of {divisor} on every "
                          f"axis: {why}")


def crop_size(config: Config) -> tuple[str, tuple[int, ...]]:
    """The config key and size of the data mode's crops."""
    data = config.data
    return (("slice_size", data.slice_size) if data.mode == "slice2d"
            else ("patch_size", data.patch_size))


def check_accumulation(config: Config, counts: dict[str, int]) -> None:
    """Checkpoints, and so resumes, must fall between optimiser steps: DeepSpeed saves no
    half-accumulated gradients, so each count of micro-batches after which a run checkpoints
    must be a multiple of ``deepspeed.grad_accum`` (one line now, not a resume that differs)."""
    accum = config.deepspeed.grad_accum
    for name, count in counts.items():
        if count % accum:
            raise ConfigError(f"{name}={count} must be a multiple of deepspeed.grad_accum="
                              f"{accum}: a checkpoint there would fall inside an optimiser step")


# What a resumed run's checkpoint fixes: its data position and shards, its optimiser state.
RESUME_KEYS = ("data.batch_size", "data.samples_per_epoch", "scaling.num_workers",
               "deepspeed.grad_accum", "deepspeed.zero_stage",
               "data.seed", "data.split_fractions", "data.splits_file")  # the split


def check_resume(config: Config, fixed: Sequence[str]) -> None:
    """A rerun of a run name resumes its latest checkpoint, whose trainer's ``fixed`` keys
    (its learning-rate schedule, ...) and ``RESUME_KEYS`` follow the settings it was trained
    with: one that changes them is refused in one line (the restored schedule would silently
    win, e.g. lr 0 past the old end)."""
    checkpoints = _registered_checkpoints(config)
    if not checkpoints:
        return
    checkpoint, _ = max(checkpoints, key=lambda pair: int(pair[1]["step"]))
    with checkpoint.filesystem.open_input_stream(f"{checkpoint.path}/raylung_config.yaml") as f:
        trained = dict(flat_items(yaml.safe_load(f.read())))
    now = dict(flat_items(config.model_dump(mode="json")))
    for key in (*fixed, *RESUME_KEYS):
        if trained.get(key) != now[key]:
            raise ConfigError(f"run.name={config.run.name} resumes a run trained with "
                              f"{key}={trained.get(key)}, which a resume cannot change to "
                              f"{now[key]}: keep it, or start a new run.name")


def gan_shards(config: Config, epochs: list[int], world: int) -> dict[str, list[ray.data.Dataset]]:
    """Each domain's training shards, one per worker; both domains' slices pass through the
    lung, where the disease is (``data.box_slices`` is the segmenter's), and the healthy
    domain is healthy (``data.twin_p``, the oracle's twins, is the segmenter's too)."""
    stream = config.model_copy(deep=True)
    stream.data.box_slices = 0.0
    stream.data.twin_p = 0.0
    return {"healthy": build_shards(stream, "train", epochs, "healthy", True, world),
            "pathological": build_shards(stream, "train", epochs, "pathological", world=world)}


def fit(config: Config, worker: Callable[[dict[str, Any]], None],
        datasets: dict[str, ray.data.Dataset], loop_config: dict[str, Any],
        callbacks: Sequence[UserCallback] = (), progress: bool = True,
        best: str | None = None) -> ray.train.Result:
    """Run ``worker`` on ``scaling.num_workers`` Ray Train workers, each with its own
    datasets (``per_worker``); the resolved config travels in ``loop_config``, with
    the queue of rank 0's progress lines when ``progress``. A finished run gets its
    ``summary.json`` (best checkpoint by the metric ``best``, else the last) and curves."""
    start = time.perf_counter()
    for dataset in datasets.values():  # the workers' per-interval lines are the progress
        dataset.context.enable_progress_bars = False
    run = run_config(config, callbacks, best)
    poll_reports_often()
    if progress:  # the first progress line comes after a report's steps and the start-up
        print(f"{config.run.name}: starting {config.scaling.num_workers} Ray Train worker(s) on "
              f"{'GPUs' if config.scaling.use_gpu else 'CPUs'}", flush=True)
    with printed_progress(progress) as queue:
        trainer = TorchTrainer(
            worker,
            train_loop_config={"config": config.model_dump(mode="json"), "progress": queue,
                               **loop_config},
            scaling_config=_scaling(config),
            datasets=datasets,
            dataset_config=data_config(datasets),
            run_config=run,
        )
        try:
            result = trainer.fit()  # a failed run raises here (Ray Train V2)
        except SystemExit as stop:  # Ray Train's Ctrl-C: it aborts the run, then exits with 0
            raise KeyboardInterrupt from stop
    finish_logging(run.callbacks)
    remove_untracked_checkpoints(config)
    write_run_summary(config, run_folder(config), result, time.perf_counter() - start, best)
    return result


def per_worker(streams: dict[str, list[ray.data.Dataset]]) -> dict[str, ray.data.Dataset]:
    """Each worker's own streams (``build_shards``: a list per stream, one dataset per rank)
    named ``rank_stream``. Ray Data's ``streaming_split`` hands blocks to whichever worker
    asks first, so a restarted multi-worker run would not replay; fixed shards do (at a
    reader pool per worker)."""
    return {rank_stream(name, rank): dataset for name, shards in streams.items()
            for rank, dataset in enumerate(shards)}


def data_config(datasets: dict[str, ray.data.Dataset]) -> DataConfig:
    """No split (each worker reads its own datasets, ``per_worker``), each dataset streamed
    with its own execution options: Ray Train would otherwise take the global ones and drop
    the pipeline's ``preserve_order``, so a rerun could see the batches in another order."""
    return DataConfig(datasets_to_split=[],
                      execution_options={k: ds.context.execution_options
                                         for k, ds in datasets.items()})


def start_ray(config: Config) -> None:
    """Connect to Ray; on CPU first set ``DS_ACCELERATOR=cpu``, which a local cluster's
    workers inherit."""
    select_accelerator(config.scaling.use_gpu)
    connect(config.ray)


def resume_epochs(config: Config, total_steps: int) -> tuple[range, int]:
    """The data epochs still to stream and the step they start at (0 for a new run)."""
    per_epoch = steps_per_epoch(config)
    first_epoch = latest_step(config) // per_epoch
    return range(first_epoch, math.ceil(total_steps / per_epoch)), first_epoch * per_epoch


def run_config(config: Config, callbacks: Sequence[UserCallback] = (),
               best: str | None = None) -> RunConfig:
    """Name, storage, recovery, retention and callbacks of a training run (rerunning the same
    name resumes); the loggers of ``config.logging`` come before ``callbacks``. A run with
    a ``best`` metric keeps a copy of its best checkpoint (raylung/train/keep_best.py)."""
    own = [*logging_callbacks(config, run_folder(config)), *([KeepBest(best)] if best else [])]
    # A run whose workers can never start fails after 3 controller retries instead of waiting;
    # each waits RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (60 s; 20 min in cluster/'s jobs).
    failures = FailureConfig(max_failures=config.run.max_failures, controller_failure_limit=3)
    path, filesystem = _ray_storage(config)
    return RunConfig(name=config.run.name, storage_path=path, storage_filesystem=filesystem,
                     failure_config=failures,
                     checkpoint_config=CheckpointConfig(num_to_keep=config.run.keep_checkpoints,
                                                        checkpoint_score_attribute="step"),
                     callbacks=[*own, *callbacks],
                     logging_config=train_logging(config.ray.verbose))


def can_validate(config: Config) -> bool:
    """Whether GAN validation runs: ``gan.val_samples`` > 0 and labelled healthy val cases;
    without labelled pathological ones it runs without the scores that compare with them.
    The reason for either in one line on this console (the workers' stderr does not reach it)."""
    if config.gan.val_samples == 0 or val_cases(config, "healthy", "validation skipped") is None:
        return False
    val_cases(config, "pathological", "GAN validation without translation and realism scores")
    return True


def val_cases(config: Config, domain: str, otherwise: str) -> pd.DataFrame | None:
    """The labelled val cases of ``domain``; None, and ``otherwise`` with the reason on
    stderr, when the val split has none."""
    try:
        return select_cases(CaseStore(config.data.store, config.storage.storage_options),
                            config.data, "val", domain, labelled_only=True)
    except NoCasesError as err:
        print(f"raylung: {otherwise}: {err}", file=sys.stderr)
        return None


def steps_per_epoch(config: Config) -> int:
    """Optimiser steps per data epoch; an epoch must split evenly into worker batches."""
    per_step = config.data.batch_size * config.scaling.num_workers
    if config.data.samples_per_epoch % per_step:
        raise ValueError(f"data.samples_per_epoch={config.data.samples_per_epoch} must be a "
                         f"multiple of data.batch_size x scaling.num_workers = {per_step}")
    return config.data.samples_per_epoch // per_step


def remove_untracked_checkpoints(config: Config) -> None:
    """Delete checkpoint folders Ray Train never registered: a worker killed while
    reporting leaves its upload behind, which retention would otherwise keep forever."""
    fs, run = fsspec.core.url_to_fs(run_folder(config), **config.storage.storage_options)
    tracked = {PurePosixPath(c.path).name for c, _ in _registered_checkpoints(config)}
    for folder in fs.glob(f"{run}/checkpoint_*"):
        if fs.isdir(folder) and PurePosixPath(folder).name not in tracked:
            fs.rm(folder, recursive=True)


def latest_step(config: Config) -> int:
    """The step of the newest checkpoint Ray Train registered for this run (0 for a new run)."""
    return max((int(m["step"]) for _, m in _registered_checkpoints(config)), default=0)


def _registered_checkpoints(config: Config) -> list[tuple[ray.train.Checkpoint, dict]]:
    """The checkpoints (and their metrics) Ray Train registered in the run folder, read
    through its public ``Result.from_path``; none for a new run."""
    path, filesystem = _ray_storage(config)
    try:
        result = ray.train.Result.from_path(f"{path}/{config.run.name}", filesystem)
    except RuntimeError:  # Ray's answer for a run folder without a registered checkpoint
        return []
    return result.best_checkpoints or []


def _scaling(config: Config) -> ScalingConfig:
    scaling = config.scaling
    gpus = {"GPU": scaling.gpus_per_worker} if scaling.use_gpu else {}
    resources = {"CPU": scaling.cpus_per_worker, **gpus}
    return ScalingConfig(num_workers=scaling.num_workers, use_gpu=scaling.use_gpu,
                         resources_per_worker=resources)


def run_folder(config: Config) -> str:
    """The run's folder: an absolute local path, or a URL (``s3://...``) as configured."""
    return f"{config.run.storage_path}/{config.run.name}"


def checkpoint_folder(config: Config, checkpoint: ray.train.Checkpoint) -> str:
    """Where ``checkpoint`` lies as a path or URL a user can open."""
    return checkpoint_url(run_folder(config), checkpoint)


def _ray_storage(config: Config) -> tuple[str, pyarrow.fs.FileSystem | None]:
    """Ray Train's storage path and filesystem. A URL with storage options (an endpoint,
    keys) goes through fsspec with them, as the store does; otherwise Ray resolves it."""
    path, options = config.run.storage_path, config.storage.storage_options
    if "://" not in path or not options:
        return path, None
    fs, root = fsspec.core.url_to_fs(path, **options)
    return root, pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))
