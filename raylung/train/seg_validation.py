"""Segmenter validation on pathological cases: Dice, IoU and rim Dice, and a PNG grid.

2-D: the fixed full slices of the val stream (thorax box resized to ``data.slice_size``).
3-D: every pathological val case's whole thorax box, predicted with MONAI's sliding window.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from raylung.config import Config
from raylung.data.pipeline import select_cases
from raylung.evaluate.overlap import segmentation_scores
from raylung.plots import save_segmentation_grid
from raylung.preprocess.normalise import normalise_hu
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest


@torch.no_grad()
def validate_slices(model: torch.nn.Module, batches: Iterable[dict[str, Any]], config: Config,
                    folder: Path) -> dict[str, float]:
    """Score the model on the val slices; draw the first few."""
    images, truths, preds, spacings = [], [], [], []
    for batch in batches:
        images.append(batch["image"].numpy())
        truths.append(batch["lung"].numpy())
        preds.append(_predict(model, batch["image"]))
        spacings.append(batch["spacing"].numpy())
    images, truths, preds = (np.concatenate(a) for a in (images, truths, preds))
    save_segmentation_grid(images, truths, preds, folder / "validation.png")
    return _mean_scores(preds, truths, np.concatenate(spacings), config.seg.rim_mm)


@torch.no_grad()
def validate_volumes(model: torch.nn.Module, config: Config, folder: Path) -> dict[str, float]:
    """Score the model on every pathological val case's thorax box by sliding window."""
    store = CaseStore(config.data.store, config.storage.storage_options)
    cases = select_cases(read_manifest(store), config.data, "val", "pathological", True)
    images, truths, preds, spacings = [], [], [], []
    for case_id in cases["case_id"]:
        image, lung, spacing = _thorax_volume(store, case_id, config)
        logits = sliding_window_inference(torch.from_numpy(image)[None, None].to(_device(model)),
                                          config.data.patch_size, config.seg.sw_batch_size,
                                          lambda x: model(x.to(_dtype(model))).float())
        preds.append(logits.argmax(1)[0].cpu().numpy().astype(np.uint8))
        images.append(image[None])
        truths.append(lung)
        spacings.append(spacing)
    middle = [(i[:, len(i[0]) // 2], t[len(t) // 2], p[len(p) // 2])
              for i, t, p in zip(images, truths, preds)]
    save_segmentation_grid(*(np.stack(a) for a in zip(*middle)), folder / "validation.png")
    return _mean_scores(preds, truths, spacings, config.seg.rim_mm)


def _thorax_volume(store: CaseStore, case_id: str, config: Config
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised image, lung mask and (z, y, x) spacing of one case's thorax box."""
    group = store.open_case(case_id)
    attrs = dict(group.attrs["raylung"])
    z0, z1, y0, y1, x0, x1 = attrs["thorax_box"]
    box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
    image = normalise_hu(store.volume(case_id, "image")[box], config.data.hu_norm)
    return (image, store.volume(case_id, "lung")[box],
            np.asarray(attrs["spacing"][::-1], np.float32))


def _predict(model: torch.nn.Module, image: torch.Tensor) -> np.ndarray:
    logits = model(image.to(device=_device(model), dtype=_dtype(model)))
    return logits.argmax(1).cpu().numpy().astype(np.uint8)


def _mean_scores(preds: Iterable[np.ndarray], truths: Iterable[np.ndarray],
                 spacings: Iterable[np.ndarray], rim_mm: float) -> dict[str, float]:
    rows = [segmentation_scores(p, t, s, rim_mm) for p, t, s in zip(preds, truths, spacings)]
    return {f"val_{k}": float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype
