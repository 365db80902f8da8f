"""GAN validation: G on fixed healthy val samples, scored against fixed real pathological ones.

Per checkpoint, in HU: how much G changed the band around the lung, outside the body and in
the lung; whether the wall's dense voxels stayed; how far G(h) moved towards the disease
(raylung/evaluate/disease.py); how alike its lung is to real diseased lungs (realism.py); and a
PNG grid. The samples are read once, in rank 0's process, with the pipeline's own reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from raylung.config import Config
from raylung.data.pipeline import NoCasesError, read_val_samples
from raylung.evaluate.disease import translation_scores
from raylung.evaluate.realism import realism_distance
from raylung.evaluate.synthesis import synthesis_metrics
from raylung.models.placement import where
from raylung.plots import save_synthesis_grid
from raylung.preprocess.normalise import to_hu


class GanValidator:
    """Reads the val samples once; each call translates them with G and scores the result."""

    def __init__(self, config: Config) -> None:
        self.window = config.data.hu_norm
        self.healthy = read_val_samples(config, "healthy", config.gan.val_samples)
        self.reference = _reference(config)

    @torch.no_grad()
    def translate(self, g: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The val samples h and G(h) on G's device; a G with noise draws the same fields at
        every call, and the caller's random state is left as it was."""
        h = torch.as_tensor(self.healthy["image"]).to(*where(g))
        with torch.random.fork_rng(devices=[h.device] if h.is_cuda else []):
            torch.manual_seed(0)
            return h, g(h)

    @torch.no_grad()
    def __call__(self, g: torch.nn.Module, f: torch.nn.Module | None = None,
                 folder: Path | None = None) -> dict[str, float]:
        """``val_*`` scores of G, and the grid (with F(G(h)) when F is given) in ``folder``."""
        h, gh = self.translate(g)
        columns = {"h": h, "G(h)": gh}
        if f is not None:
            columns["F(G(h))"] = f(gh.to(*where(f)))  # an fp32 average G beside a bf16 F
        columns = {k: t.float().cpu().numpy() for k, t in columns.items()}
        h, gh = columns["h"], columns["G(h)"]
        lung, band = self.healthy["lung"], self.healthy["surround"]
        h_hu, gh_hu = _hu(h, self.window), _hu(gh, self.window)
        metrics = synthesis_metrics(h_hu, gh_hu, lung, band)
        if self.reference is not None:
            p_hu, p_lung = _hu(self.reference["image"], self.window), self.reference["lung"]
            metrics.update(translation_scores(h_hu, gh_hu, lung, p_hu, p_lung))
            metrics.update(realism_distance(gh_hu, lung, p_hu, p_lung))
        if folder is not None:
            save_synthesis_grid({**columns, "|G(h) - h|": np.abs(gh - h) / 2}, band,
                                folder / "validation.png")
        return {f"val_{k}": v for k, v in metrics.items()}


def _reference(config: Config) -> dict[str, np.ndarray] | None:
    """Labelled pathological val samples; None when the val split has none (the driver said
    so: ``runner.can_validate``)."""
    try:
        return read_val_samples(config, "pathological", config.gan.val_pathological)
    except NoCasesError:
        return None


def _hu(images: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """The centre channel of (B, C, *spatial) normalised images, in HU."""
    return to_hu(images[:, images.shape[1] // 2], window)
