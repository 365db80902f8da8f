"""The per-worker CycleGAN training loop that Ray Train runs (one process per worker).

Everything the worker needs travels in its ``train_loop_config`` (the resolved config); it
builds the two DeepSpeed engines, resumes from the run's latest checkpoint if there is one,
and reads its shard of the healthy and pathological streams.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray.train
import torch

from raylung.config import Config
from raylung.data.pipeline import to_torch
from raylung.train.checkpoint import restore, save_and_report
from raylung.train.cyclegan import (Discriminators, GanBatch, Generators, discriminator_step,
                                    generator_step, loss_weights)
from raylung.train.deepspeed_config import deepspeed_config, select_accelerator
from raylung.train.gan_validation import validate
from raylung.train.image_pool import ImagePool
from raylung.train.schedule import linear_decay_lambda


def train_gan_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: train until ``gan.steps``, reporting and checkpointing."""
    config = Config.model_validate(loop_config["config"])
    engines = _engines(config)
    rank = ray.train.get_context().get_world_rank()
    pools = {d: ImagePool(config.gan.pool_size, seed=config.data.seed + 1000 * rank + i)
             for i, d in enumerate(("p", "h"))}
    state = restore(engines)
    step = 0
    if state is not None:
        step = state["step"]
        for name, pool in pools.items():
            pool.load_state_dict(state["pools"][name])
    batches = _batches(config, skip=step - loop_config["first_step"])
    validation = _validation(config, engines) if loop_config["validate"] and rank == 0 else None
    _loop(config, engines, pools, batches, step, validation)


def _engines(config: Config) -> dict[str, Any]:
    """Generators and discriminators, each its own DeepSpeed engine."""
    select_accelerator(config.scaling.use_gpu)
    import deepspeed  # after select_accelerator: DeepSpeed picks its accelerator on import

    deepspeed.init_distributed(dist_backend="nccl" if config.scaling.use_gpu else "gloo")
    torch.manual_seed(config.gan.seed)  # same initial weights on every rank and every rerun
    engines = {}
    for name, module in (("generators", Generators(config)),
                         ("discriminators", Discriminators(config))):
        schedule = linear_decay_lambda(config.gan.steps, config.gan.decay_start)
        engines[name], *_ = deepspeed.initialize(
            model=module, model_parameters=module.parameters(),
            config=deepspeed_config(config, config.gan.lr, config.gan.betas),
            lr_scheduler=lambda optimizer, s=schedule: torch.optim.lr_scheduler.LambdaLR(optimizer, s))
    return engines


def _batches(config: Config, skip: int) -> Iterator[GanBatch]:
    """Pairs of healthy and pathological batches from this worker's shards."""
    def stream(name: str) -> Iterator[dict[str, Any]]:
        return iter(ray.train.get_dataset_shard(name).iter_torch_batches(
            batch_size=config.data.batch_size, collate_fn=to_torch, drop_last=True))

    for index, (h, p) in enumerate(zip(stream("healthy"), stream("pathological"))):
        if index >= skip:
            yield GanBatch(h["image"], h["surround"], p["image"])


def _validation(config: Config, engines: dict[str, Any]) -> Callable[[Path], dict[str, float]]:
    """Rank 0's validation, run at every checkpoint on one fixed batch of val samples."""
    batch = next(iter(ray.train.get_dataset_shard("val").iter_torch_batches(
        batch_size=config.gan.val_samples, collate_fn=to_torch)))
    return lambda folder: validate(engines["generators"].module, batch, config, folder)


def _loop(config: Config, engines: dict[str, Any], pools: dict[str, ImagePool],
          batches: Iterator[GanBatch], step: int,
          validation: Callable[[Path], dict[str, float]] | None) -> None:
    gens, discs = engines["generators"], engines["discriminators"]
    dtype = next(gens.module.parameters()).dtype
    weights = loss_weights(config)
    meter = _Meter()
    while step < config.gan.steps:
        batch = meter.wait(batches)
        if batch is None:
            raise RuntimeError(f"data ran out at step {step} of {config.gan.steps}")
        batch = batch.to(dtype, gens.device)
        terms, fake_p, fake_h = generator_step(gens, discs, batch, weights)
        terms.update(discriminator_step(discs, batch, fake_p, fake_h, pools))
        step += 1
        meter.add(terms)
        if step % config.gan.log_every == 0 or step == config.gan.steps:
            metrics = {**meter.flush(), "step": step, "lr": gens.get_lr()[0]}
            _report(config, engines, pools, step, metrics, validation)


def _report(config: Config, engines: dict[str, Any], pools: dict[str, ImagePool], step: int,
            metrics: dict[str, float],
            validation: Callable[[Path], dict[str, float]] | None) -> None:
    if ray.train.get_context().get_world_rank() == 0:
        print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()), flush=True)
    if step % config.gan.checkpoint_every == 0 or step == config.gan.steps:
        state = {"step": step, "pools": {k: p.state_dict() for k, p in pools.items()}}
        save_and_report(engines, state, config, metrics, validation)
    else:
        ray.train.report(metrics)


class _Meter:
    """Mean loss terms, steps/s and the fraction of time spent waiting for data."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._start = time.perf_counter()
        self._wait = 0.0
        self._sums: dict[str, float] = {}
        self._count = 0

    def wait(self, batches: Iterator[GanBatch]) -> GanBatch | None:
        start = time.perf_counter()
        batch = next(batches, None)
        self._wait += time.perf_counter() - start
        return batch

    def add(self, terms: dict[str, float]) -> None:
        for key, value in terms.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1

    def flush(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._start
        out = {k: v / self._count for k, v in self._sums.items()}
        out.update(steps_per_s=self._count / elapsed, data_wait_fraction=self._wait / elapsed)
        self._reset()
        return out
