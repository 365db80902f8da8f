"""The per-worker segmenter training loop that Ray Train runs (one process per worker).

One DeepSpeed engine (the U-Net); labelled samples from this worker's shard of ``train``
(some of them translated by G upstream), plus, with ``seg.pseudo_label``, unlabelled
pathological samples labelled by an EMA teacher where it is confident. Rank 0 validates on
whole pathological val scans at every checkpoint (one per data epoch and at the end).
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
from raylung.losses.segmentation import pseudo_label_loss, supervised_loss
from raylung.models.placement import where
from raylung.networks import build_segmenter, export_model
from raylung.train.checkpoint import report, restore
from raylung.train.ema import ema_model
from raylung.train.engine import build_engine, init_distributed
from raylung.train.meter import Meter
from raylung.train.progress import SEG_KEYS, progress_reporter
from raylung.train.seg_validation import ScanValidator
from raylung.train.streams import shard_batches, zip_streams

Batch = tuple[dict[str, Any], dict[str, Any] | None]


def train_seg_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: train until ``seg.steps``, reporting and checkpointing."""
    config = Config.model_validate(loop_config["config"])
    seg = config.seg
    streams = _streams(config)  # they start up while the engine is built
    init_distributed(config)
    torch.manual_seed(seg.seed)  # same initial weights on every rank and every rerun
    engine = build_engine(build_segmenter(config), config, seg.lr, seg.betas, seg.steps,
                          seg.decay_start)
    teacher = ema_model(engine.module, seg.ema_decay) if seg.pseudo_label else None
    state = restore({"segmenter": engine})
    step = 0 if state is None else state["step"]
    if teacher is not None and state is not None:
        teacher.load_state_dict(state["teacher"])
    batches = _batches(streams, skip=step - loop_config["first_step"])
    announce = progress_reporter(loop_config["progress"], config.run.name, seg.steps, SEG_KEYS)
    _loop(config, engine, teacher, batches, step, loop_config["steps_per_epoch"],
          _extras(config, engine, loop_config["validate"]), announce)


def _streams(config: Config) -> Iterator[tuple[dict[str, Any], ...]]:
    """This worker's labelled shard, zipped with its unlabelled one for pseudo-labelling."""
    names = ["train", "unlabelled"] if config.seg.pseudo_label else ["train"]
    return zip_streams(*(shard_batches(n, config.data.batch_size) for n in names))


def _batches(streams: Iterator[tuple[dict[str, Any], ...]], skip: int) -> Iterator[Batch]:
    """Labelled batches, each with an unlabelled batch when pseudo-labelling is on, after
    the first ``skip`` (those a resumed run has seen)."""
    for batch, *extra in itertools.islice(streams, skip, None):
        yield batch, extra[0] if extra else None


def _extras(config: Config, engine: Any, validate: bool) -> Callable[[Path], dict[str, float]]:
    """Rank 0's additions to a checkpoint: the exported segmenter, then validation."""
    rank = ray.train.get_context().get_world_rank()
    validator = ScanValidator(config) if validate and rank == 0 else None

    def extras(folder: Path) -> dict[str, float]:
        export_model(engine.module, config, folder / "segmenter.pt", "segmenter")
        if validator is None:
            return {}
        engine.module.eval()
        try:
            return validator(engine.module, folder)
        finally:
            engine.module.train()
    return extras


def _loop(config: Config, engine: Any, teacher: AveragedModel | None, batches: Iterator[Batch],
          step: int, steps_per_epoch: int, extras: Callable[[Path], dict[str, float]],
          announce: Callable[[dict[str, float]], None] | None) -> None:
    seg = config.seg
    loss_fn = supervised_loss()
    _, dtype = where(engine.module)
    meter = Meter()
    while step < seg.steps:
        pair = meter.wait(batches)
        if pair is None:
            raise RuntimeError(f"data ran out at step {step} of {seg.steps}")
        meter.add(_step(engine, teacher, pair, loss_fn, dtype, config))
        step += 1
        checkpoint = step % steps_per_epoch == 0 or step == seg.steps
        if checkpoint or step % seg.log_every == 0:
            metrics = {**meter.flush(), "step": step, "lr": engine.get_lr()[0]}
            state = {"step": step,
                     **({"teacher": teacher.state_dict()} if teacher is not None else {})}
            report({"segmenter": engine}, state, config, metrics, checkpoint, extras, announce)


def _step(engine: Any, teacher: AveragedModel | None, pair: Batch, loss_fn: Any,
          dtype: torch.dtype, config: Config) -> dict[str, float]:
    """One optimiser step: Dice + CE on labelled samples, plus the pseudo-label term."""
    batch, unlabelled = pair
    image = batch["image"].to(engine.device, dtype)
    lung = batch["lung"].to(engine.device)[:, None]
    loss = loss_fn(engine(image).float(), lung)
    terms = {"loss_seg": loss.item(),
             "synthetic_fraction": float(batch["synthetic"].float().mean())
             if "synthetic" in batch else 0.0}
    if teacher is not None:
        image_u = unlabelled["image"].to(engine.device, dtype)
        with torch.no_grad():
            # the fp32 average of a (bf16 on GPU) student reads the images at full precision
            teacher_logits = teacher(unlabelled["image"].to(*where(teacher)))
        pseudo, share = pseudo_label_loss(engine(image_u).float(), teacher_logits,
                                          config.seg.pseudo_threshold)
        loss = loss + config.seg.pseudo_weight * pseudo
        terms.update(loss_pseudo=pseudo.item(), pseudo_confident=share)
    engine.backward(loss)
    boundary = engine.is_gradient_accumulation_boundary()  # the optimiser steps now
    engine.step()
    if teacher is not None and boundary:  # the average follows optimiser steps
        teacher.update_parameters(engine.module)
    terms["loss"] = loss.item()
    return terms
