"""GAN validation on held-out healthy samples: HU changes, shape preservation, a PNG grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from raylung.config import Config
from raylung.evaluate.synthesis import synthesis_metrics
from raylung.plots import save_synthesis_grid
from raylung.preprocess.normalise import to_hu


@torch.no_grad()
def validate(gens: torch.nn.Module, batch: dict[str, Any], config: Config,
             folder: Path) -> dict[str, float]:
    """Translate the validation batch with G (and back with F); score it and draw the grid."""
    dtype = next(gens.parameters()).dtype
    device = next(gens.parameters()).device
    h = batch["image"].to(device=device, dtype=dtype)
    gh = gens.g(h)
    fgh = gens.f(gh)
    h, gh, fgh = (t.float().cpu().numpy() for t in (h, gh, fgh))
    centre = h.shape[1] // 2
    window = config.data.hu_norm
    metrics = synthesis_metrics(to_hu(h[:, centre], window), to_hu(gh[:, centre], window),
                                batch["lung"].numpy(), batch["surround"].numpy())
    save_synthesis_grid({"h": h, "G(h)": gh, "F(G(h))": fgh, "|G(h) - h|": np.abs(gh - h) / 2},
                        batch["surround"].numpy(), folder / "validation.png")
    return {f"val_{k}": v for k, v in metrics.items()}
