"""The exported healthy -> pathological generator: weights plus the config that built it.

A self-contained file for ``synth`` and the segmentation pipeline's GAN stage; it loads with
``torch.load(..., weights_only=True)`` (tensors, strings, numbers only).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from raylung.config import Config
from raylung.models.generator import ResnetGenerator

FORMAT = 1


def export_generator(generator: torch.nn.Module, config: Config, path: str | Path) -> Path:
    """Write G's fp32 CPU weights and the resolved config to ``path`` atomically."""
    path = Path(path)
    state = {k: v.detach().float().cpu() for k, v in generator.state_dict().items()}
    payload = {"format": FORMAT, "state_dict": state, "config": config.model_dump(mode="json")}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_generator(path: str | Path) -> tuple[ResnetGenerator, Config]:
    """Rebuild the generator from an exported file (eval mode, CPU)."""
    from raylung.train.cyclegan import network_shape

    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a raylung generator export (format {payload.get('format')})")
    config = Config.model_validate(payload["config"])
    dims, channels = network_shape(config)
    generator = ResnetGenerator(dims, channels, channels, config.gan.width, config.gan.n_blocks)
    generator.load_state_dict(payload["state_dict"])
    return generator.eval(), config
