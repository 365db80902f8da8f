"""Realism of a trial's generator, scored outside the trainer on fixed val samples.

GAN validation reports the shape metrics but not realism, so a trial's report callback runs
this on each checkpoint's exported generator: G translates the healthy val samples that
validation uses, and their lungs are compared with real pathological val lungs. The samples
are read in-process with the pipeline's own reader, leaving the cluster's CPUs to training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from raylung.config import Config
from raylung.data.pipeline import CropReader, load_centres, select_cases
from raylung.data.specs import draw_specs
from raylung.evaluate.realism import realism_distance
from raylung.models.export import load_generator
from raylung.preprocess.normalise import to_hu
from raylung.store.case_store import CaseStore


class RealismProbe:
    """Scores exported generators on the same samples every time (read on first use)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._samples: tuple[dict[str, Any], dict[str, Any]] | None = None

    def __call__(self, generator_path: str | Path) -> dict[str, float]:
        """``val_realism_hu`` and its parts for one exported ``generator_h2p.pt``."""
        if self._samples is None:
            self._samples = (read_val_samples(self.config, "healthy", self.config.gan.val_samples),
                             read_val_samples(self.config, "pathological",
                                              self.config.tune.realism_samples))
        healthy, reference = self._samples
        generator, _ = load_generator(generator_path)
        with torch.no_grad():
            translated = generator(torch.as_tensor(healthy["image"])).numpy()
        window = self.config.data.hu_norm
        scores = realism_distance(to_hu(_centre(translated), window), healthy["lung"],
                                  to_hu(_centre(reference["image"]), window), reference["lung"])
        return {f"val_{k}": v for k, v in scores.items()}


def read_val_samples(config: Config, domain: str, count: int) -> dict[str, np.ndarray]:
    """``count`` fixed, unaugmented labelled val samples of one domain: the specs that
    ``build_dataset(..., "val", [0], domain, labelled_only=True)`` streams."""
    cfg = config.model_copy(deep=True)
    cfg.data.samples_per_epoch = count
    cfg.data.augment.enabled = False
    store = CaseStore(cfg.data.store, cfg.storage.storage_options)
    cases = select_cases(store, cfg.data, "val", domain, labelled_only=True)
    centres = load_centres(store, cases) if cfg.data.mode == "patch3d" else {}
    specs = draw_specs(cases, centres, cfg.data, 0, f"val/{domain}/True")
    reader = CropReader(store.url, store.storage_options, cfg.data)
    return reader({key: np.array([s[key] for s in specs]) for key in specs[0]})


def _centre(images: np.ndarray) -> np.ndarray:
    """The centre channel of (B, C, *spatial) images, as validation scores it."""
    return images[:, images.shape[1] // 2]
