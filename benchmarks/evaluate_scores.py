"""Seconds per case of ``raylung evaluate``'s scores on a clinical-size pair of lung masks:
the whole ``score_case`` and its surface part, against MONAI's three surface metrics called
one by one (each finds the edges and their distances again), in this process.

    .venv/bin/python benchmarks/evaluate_scores.py            # 512 x 512 x 300, ~1 min on 2 CPUs

The pair: lung masks of two ellipsoids each, one per side, at 0.7 x 0.7 x 1 mm; the reference
is 5 % smaller and shifted 4 voxels, so the two surfaces are apart by a few mm as a fair
segmenter's would be. Writes benchmarks/results/evaluate_scores.csv.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.metrics import (compute_average_surface_distance, compute_hausdorff_distance,
                           compute_surface_dice)

from raylung.evaluate.scores import _surface_scores, score_case

RESULTS = Path(__file__).parent / "results"
SPACING = (1.0, 0.7, 0.7)  # (z, y, x) mm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pred, ref = _lungs((args.slices, 512, 512), 1.0), _lungs((args.slices, 512, 512), 0.95, 4)
    print(f"{int(ref.sum()):,} reference lung voxels, {pred.shape} at {SPACING} mm")
    timings = {"MONAI's three surface metrics": lambda: _monai_three(pred, ref),
               "raylung surface scores": lambda: _surface_scores(pred, ref, SPACING, 2.0),
               "raylung score_case (all scores)": lambda: score_case(pred, ref, SPACING)}
    rows = [{"what": name, "s_per_case": _best_of(run, args.repeats)}
            for name, run in timings.items()]
    table = pd.DataFrame(rows)
    table["vs_monai_three"] = table["s_per_case"] / table["s_per_case"].iloc[0]
    print(table.round(3).to_string(index=False))
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "evaluate_scores.csv", index=False)


def _lungs(shape: tuple[int, int, int], scale: float, shift: int = 0) -> np.ndarray:
    """Two ellipsoids, left and right, filling most of the thorax as lungs do."""
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    mask = np.zeros(shape, bool)
    for side in (0.3, 0.7):
        mask |= (((z - shape[0] / 2) / (0.45 * shape[0] * scale)) ** 2
                 + ((y - shape[1] / 2 - shift) / (0.3 * shape[1] * scale)) ** 2
                 + ((x - side * shape[2]) / (0.16 * shape[2] * scale)) ** 2) <= 1
    return mask


def _monai_three(pred: np.ndarray, ref: np.ndarray) -> list[float]:
    y_pred, y = (torch.from_numpy(np.stack([~m, m]))[None] for m in (pred, ref))
    spacing = list(SPACING)
    with warnings.catch_warnings():  # MONAI 1.5+ warns about its own internal call
        warnings.filterwarnings("ignore", ".*always_return_as_numpy", FutureWarning)
        return [float(compute_hausdorff_distance(y_pred, y, percentile=95, spacing=spacing)),
                float(compute_average_surface_distance(y_pred, y, symmetric=True,
                                                       spacing=spacing)),
                float(compute_surface_dice(y_pred, y, [2.0], spacing=spacing))]


def _best_of(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs: the least disturbed by the machine's other work."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return min(seconds)


if __name__ == "__main__":
    main()
