"""GAN checkpoints through Ray Train: every rank saves its DeepSpeed shards into one folder.

    generators/  discriminators/   DeepSpeed engines (weights, optimiser, LR scheduler, ZeRO shards)
    state_rank<r>.pt               step and the rank's image pools
    raylung_config.yaml            the resolved config (rank 0)
    generator_h2p.pt               the exported healthy -> pathological generator (rank 0)
    validation.png                 h, G(h), F(G(h)), |G(h) - h| and the band (rank 0, with val data)

Each engine has its own subfolder because both write a ``latest`` file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray.train
import torch

from raylung.config import Config, save_config
from raylung.train.export import export_generator

TAG = "state"
ENGINES = ("generators", "discriminators")


def save_and_report(engines: dict[str, Any], state: dict[str, Any], config: Config,
                    metrics: dict[str, float],
                    extras: Callable[[Path], dict[str, float]] | None = None) -> None:
    """Save this rank's part of the checkpoint and report it with ``metrics``; rank 0 also
    runs ``extras(folder)`` (validation), whose files and metrics join the checkpoint."""
    rank = ray.train.get_context().get_world_rank()
    with tempfile.TemporaryDirectory() as folder:
        for name in ENGINES:
            engines[name].save_checkpoint(str(Path(folder, name)), tag=TAG)
        torch.save(state, Path(folder, f"state_rank{rank}.pt"))
        if rank == 0:
            save_config(config, Path(folder, "raylung_config.yaml"))
            export_generator(engines["generators"].module.g, config,
                             Path(folder, "generator_h2p.pt"))
            if extras is not None:
                metrics = {**metrics, **extras(Path(folder))}
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def restore(engines: dict[str, Any]) -> dict[str, Any] | None:
    """Load the latest checkpoint of this run into the engines; its saved state, or None."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    rank = ray.train.get_context().get_world_rank()
    with checkpoint.as_directory() as folder:
        for name in ENGINES:
            engines[name].load_checkpoint(str(Path(folder, name)), tag=TAG)
        return torch.load(Path(folder, f"state_rank{rank}.pt"), weights_only=True)
