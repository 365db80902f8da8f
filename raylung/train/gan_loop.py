"""The per-worker CycleGAN training loop that Ray Train runs (one process per worker).

Everything the worker needs travels in its ``train_loop_config`` (the resolved config); it
builds the two DeepSpeed engines, resumes from the run's latest checkpoint if there is one,
and reads its shard of the healthy and pathological streams.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray.train
import torch
from torch.optim.swa_utils import AveragedModel

from raylung.config import Config
from raylung.models.placement import where
from raylung.networks import export_generator
from raylung.seeds import text_seed
from raylung.train.checkpoint import report, restore
from raylung.train.cyclegan import (Discriminators, GanBatch, Generators, discriminator_step,
                                    generator_step, loss_weights)
from raylung.train.ema import ema_model
from raylung.train.engine import build_engine, init_distributed
from raylung.train.gan_validation import GanValidator
from raylung.train.image_pool import ImagePool
from raylung.train.meter import Meter
from raylung.train.progress import GAN_KEYS, progress_reporter
from raylung.train.streams import shard_batches, zip_streams


def train_gan_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: train until ``gan.steps``, reporting and checkpointing."""
    config = Config.model_validate(loop_config["config"])
    pairs = _pairs(config)  # the streams start up while the engines are built
    engines = _engines(config)
    rank = ray.train.get_context().get_world_rank()
    pools = {d: ImagePool(config.gan.pool_size, seed=config.data.seed + 1000 * rank + i)
             for i, d in enumerate(("p", "h"))}
    # only rank 0 exports and validates G, so only it keeps (and checkpoints) G's average
    ema = ema_model(engines["generators"].module.g, config.gan.ema_decay) if rank == 0 else None
    state = restore(engines)
    step = 0
    if state is not None:
        step = state["step"]
        for name, pool in pools.items():
            pool.load_state_dict(state["pools"][name])
        if ema is not None:
            ema.load_state_dict(state["ema_g"])
    batches = _batches(pairs, skip=step - loop_config["first_step"])
    validation = (_validation(config, engines, ema) if loop_config["validate"] and rank == 0
                  else None)
    announce = progress_reporter(loop_config["progress"], config.run.name, config.gan.steps,
                                 GAN_KEYS)
    _loop(config, engines, ema, pools, batches, step, validation, announce)


def _engines(config: Config) -> dict[str, Any]:
    """Generators and discriminators, each its own DeepSpeed engine."""
    init_distributed(config)
    torch.manual_seed(config.gan.seed)  # same initial weights on every rank and every rerun
    gan = config.gan
    return {name: build_engine(module, config, gan.lr, gan.betas, gan.steps, gan.decay_start)
            for name, module in (("generators", Generators(config)),
                                 ("discriminators", Discriminators(config)))}


def _pairs(config: Config) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Healthy and pathological batches from this worker's shards, side by side."""
    size = config.data.batch_size
    return zip_streams(shard_batches("healthy", size), shard_batches("pathological", size))


def _batches(pairs: Iterator[tuple[dict[str, Any], dict[str, Any]]],
             skip: int) -> Iterator[GanBatch]:
    """The training batches after the first ``skip`` pairs (those a resumed run has seen)."""
    for h, p in itertools.islice(pairs, skip, None):
        yield GanBatch(h["image"], h["surround"], p["image"])


def _validation(config: Config, engines: dict[str, Any],
                ema: AveragedModel) -> Callable[[Path], dict[str, float]]:
    """Rank 0's validation of the averaged G, run at every checkpoint on fixed val samples."""
    validator = GanValidator(config)
    return lambda folder: validator(ema.module, engines["generators"].module.f, folder)


def _export(config: Config, ema: AveragedModel,
            validation: Callable[[Path], dict[str, float]] | None) -> Callable[[Path], dict]:
    """Rank 0's additions to a checkpoint: the exported (averaged) G, then the validation."""
    def extras(folder: Path) -> dict[str, float]:
        export_generator(ema.module, config, folder / "generator_h2p.pt")
        return validation(folder) if validation is not None else {}
    return extras


def _loop(config: Config, engines: dict[str, Any], ema: AveragedModel | None,
          pools: dict[str, ImagePool], batches: Iterator[GanBatch], step: int,
          validation: Callable[[Path], dict[str, float]] | None,
          announce: Callable[[dict[str, float]], None] | None) -> None:
    gens, discs = engines["generators"], engines["discriminators"]
    _, dtype = where(gens.module)
    rank = ray.train.get_context().get_world_rank()
    weights = loss_weights(config)
    meter = Meter()
    while step < config.gan.steps:
        batch = meter.wait(batches)
        if batch is None:
            raise RuntimeError(f"data ran out at step {step} of {config.gan.steps}")
        batch = batch.to(dtype, gens.device)
        # G's noise fields (gan.noise_channels) come from (seed, rank, step): a resumed run
        # draws what the run that never stopped drew
        torch.manual_seed(text_seed(f"{config.gan.seed}/{rank}/{step}"))
        boundary = gens.is_gradient_accumulation_boundary()  # G's optimiser steps this time
        terms, fake_p, fake_h = generator_step(gens, discs, batch, weights)
        if ema is not None and boundary:  # the average follows optimiser steps
            ema.update_parameters(gens.module.g)
        terms.update(discriminator_step(discs, batch, fake_p, fake_h, pools))
        step += 1
        meter.add(terms)
        checkpoint = step % config.gan.checkpoint_every == 0 or step == config.gan.steps
        if checkpoint or step % config.gan.log_every == 0:
            metrics = {**meter.flush(), "step": step, "lr": gens.get_lr()[0]}
            state = {"step": step, "pools": {k: p.state_dict() for k, p in pools.items()},
                     **({"ema_g": ema.state_dict()} if ema is not None else {})}
            report(engines, state, config, metrics, checkpoint,
                   _export(config, ema, validation) if ema is not None else None, announce)
