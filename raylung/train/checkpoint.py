"""Checkpoints through Ray Train: every rank saves its DeepSpeed shards into one folder.

    <engine>/                      one DeepSpeed engine each (weights, optimiser, LR scheduler,
                                   ZeRO shards), e.g. generators/ discriminators/ or segmenter/
    state_rank<r>.pt               the step and the rank's own loop state (e.g. image pools)
    raylung_config.yaml            the resolved config (rank 0)
    ...                            what the trainer's rank-0 ``extras`` writes: the exported
                                   model, validation PNGs

Each engine has its own subfolder because every engine writes a ``latest`` file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray.train
import torch

from raylung.config import Config, save_config

TAG = "state"


def report(engines: dict[str, Any], state: dict[str, Any], config: Config,
           metrics: dict[str, float], checkpoint: bool,
           extras: Callable[[Path], dict[str, float]] | None = None,
           announce: Callable[[dict[str, float]], None] | None = None) -> None:
    """Report one interval's metrics, with a checkpoint when ``checkpoint`` is true; rank 0
    then hands them, validation scores included, to ``announce`` (the console progress)."""
    if checkpoint:
        metrics = save_and_report(engines, state, config, metrics, extras)
    else:
        ray.train.report(metrics)
    if announce is not None and ray.train.get_context().get_world_rank() == 0:
        announce(metrics)


def save_and_report(engines: dict[str, Any], state: dict[str, Any], config: Config,
                    metrics: dict[str, float],
                    extras: Callable[[Path], dict[str, float]] | None = None) -> dict[str, float]:
    """Save this rank's part of the checkpoint and report it with ``metrics``; rank 0 also
    runs ``extras(folder)`` (export, validation), whose files and metrics join the checkpoint.
    Returns the metrics reported."""
    rank = ray.train.get_context().get_world_rank()
    with tempfile.TemporaryDirectory() as folder:
        for name, engine in engines.items():
            engine.save_checkpoint(str(Path(folder, name)), tag=TAG)
        torch.save(state, Path(folder, f"state_rank{rank}.pt"))
        if rank == 0:
            save_config(config, Path(folder, "raylung_config.yaml"))
            if extras is not None:
                metrics = {**metrics, **extras(Path(folder))}
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
    return metrics


def restore(engines: dict[str, Any]) -> dict[str, Any] | None:
    """Load the latest checkpoint of this run into the engines; its saved state, or None."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    rank = ray.train.get_context().get_world_rank()
    with checkpoint.as_directory() as folder:
        for name, engine in engines.items():
            engine.load_checkpoint(str(Path(folder, name)), tag=TAG)
        # on the CPU: the device a rank saved from may not be on the node it resumes on
        return torch.load(Path(folder, f"state_rank{rank}.pt"), map_location="cpu",
                          weights_only=True)


def engine_weights(folder: str | Path, engine: str) -> dict[str, torch.Tensor]:
    """The whole module weights ``engine`` saved in a checkpoint folder (ZeRO 0-2 keep them
    unpartitioned), e.g. to compare the trained G with the exported average."""
    path = Path(folder, engine, TAG, "mp_rank_00_model_states.pt")
    return torch.load(path, map_location="cpu", weights_only=True)["module"]
