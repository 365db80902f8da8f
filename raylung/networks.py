"""The networks a config describes, and their exported files.

``raylung.models`` holds the networks, each built from its own few numbers; this module reads
those numbers from the application config (spatial dims and image channels from the data mode,
widths and depths from ``gan.*`` and ``seg.*``) for the trainers, the GAN stage and ``segment``.

Exports are one file each: weights plus the resolved config that built them. ``generator_h2p.pt``
(healthy -> pathological G) feeds ``synth`` and the segmentation pipeline's GAN stage;
``segmenter.pt`` is the trained U-Net with its preprocessing (the ``ingest`` and ``data``
sections of its config). Both load with ``torch.load(..., weights_only=True)`` (tensors,
strings, numbers only).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fsspec
import torch
from pydantic import ValidationError

from raylung.config import Config, public_tree
from raylung.errors import storage_problem
from raylung.io.write import write_atomic
from raylung.models.generator import ResnetGenerator
from raylung.models.segmenter import lung_unet

FORMAT = 1


def network_shape(config: Config) -> tuple[int, int]:
    """Spatial dims and image channels of the data mode (2.5-D slices stack neighbours).

    >>> from raylung.config import load_config
    >>> network_shape(load_config(None, ["data.context_slices=1"]))
    (2, 3)
    """
    if config.data.mode == "slice2d":
        return 2, 2 * config.data.context_slices + 1
    return 3, 1


def build_generator(config: Config, noise: bool = True) -> ResnetGenerator:
    """A CycleGAN generator of ``config.gan`` for the data mode (same channels in and out);
    ``noise``: it reads ``gan.noise_channels`` random fields (G does, F removes disease)."""
    dims, channels = network_shape(config)
    gan = config.gan
    return ResnetGenerator(dims, channels, channels, gan.width, gan.n_blocks,
                           residual=gan.residual,
                           noise_channels=gan.noise_channels if noise else 0)


def build_segmenter(config: Config) -> torch.nn.Module:
    """The U-Net of ``config.seg`` for the data mode of ``config.data``.

    >>> from raylung.config import load_config
    >>> net = build_segmenter(load_config(None, ["seg.channels=[4,8]", "seg.strides=[2]"]))
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 2, 32, 32])
    """
    dims, channels = network_shape(config)
    seg = config.seg
    return lung_unet(dims, channels, seg.channels, seg.strides, seg.num_res_units)


def export_model(module: torch.nn.Module, config: Config, path: str | Path, kind: str) -> Path:
    """Write ``module``'s fp32 CPU weights, its ``kind`` and the config (secrets redacted) to
    ``path`` atomically."""
    path = Path(path)
    state = {k: v.detach().float().cpu() for k, v in module.state_dict().items()}
    payload = {"format": FORMAT, "kind": kind, "state_dict": state,
               "config": public_tree(config)}
    return write_atomic(path, lambda tmp: torch.save(payload, tmp))


def export_generator(generator: torch.nn.Module, config: Config, path: str | Path) -> Path:
    """Export G (healthy -> pathological)."""
    return export_model(generator, config, path, "generator_h2p")


def load_generator(path: str | Path,
                   storage_options: dict | None = None) -> tuple[torch.nn.Module, Config]:
    """Rebuild the generator from an exported file, a path or a URL (eval mode, CPU)."""
    state, config = _load(path, "generator_h2p", storage_options)
    generator = build_generator(config)
    generator.load_state_dict(state)
    return generator.eval(), config


def load_segmenter(path: str | Path,
                   storage_options: dict | None = None) -> tuple[torch.nn.Module, Config]:
    """Rebuild the U-Net segmenter from an exported file, a path or a URL (eval mode, CPU)."""
    state, config = _load(path, "segmenter", storage_options)
    segmenter = build_segmenter(config)
    segmenter.load_state_dict(state)
    return segmenter.eval(), config


def export_config(path: str | Path, kind: str, storage_options: dict | None = None) -> Config:
    """The config saved in an export of ``kind`` (``generator_h2p`` or ``segmenter``), without
    building its network: what a driver needs to prepare scans for it."""
    return _load(path, kind, storage_options)[1]


def export_digest(path: str | Path, storage_options: dict | None = None) -> str:
    """sha256 of an exported model's bytes: which model a batch's outputs came from."""
    try:
        with fsspec.open(str(path), "rb", **(storage_options or {})) as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except FileNotFoundError:
        raise ValueError(f"{path}: exported model not found") from None


def _load(path: str | Path, kind: str,
          storage_options: dict | None) -> tuple[dict[str, Any], Config]:
    """The weights and config of an export of ``kind``; one clear line if it is not one."""
    try:
        with fsspec.open(str(path), "rb", **(storage_options or {})) as file:
            payload = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: exported model not found") from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for a file that is not its own
        problem = storage_problem(err) or f"not a torch file ({type(err).__name__})"
        raise ValueError(f"{path}: {problem}") from None
    found = payload.get("kind", "generator_h2p") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or found != kind:
        raise ValueError(f"{path}: not a raylung {kind} export (found {found or 'something else'})")
    try:
        return payload["state_dict"], Config.model_validate(payload["config"])
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ValueError(f"{path}: its saved config does not fit this raylung version "
                         f"({problems})") from None
