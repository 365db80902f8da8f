"""How far the translation score's disease share separates the two real domains, on the very
64 x 64 val slices GAN validation scores, against the naive share of lung voxels above -500 HU.

    .venv/bin/python benchmarks/disease_score.py      # 60 phantoms (~2 min to make and ingest)

Prints one table (pooled share, per-slice mean and sd, per domain; healthy blurred with
sigma 1 voxel, which must stay at the healthy share) and writes
``benchmarks/results/disease_score.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from raylung.config import load_config
from raylung.data.pipeline import read_val_samples
from raylung.evaluate.disease import disease_share
from raylung.preprocess.normalise import to_hu

from measure import phantom_store

RESULTS = Path(__file__).parent / "results"
NAIVE_HU = -500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raylung-disease-score"))
    parser.add_argument("--samples", type=int, default=64, help="val slices per domain")
    args = parser.parse_args()
    config = load_config(None, ["phantom.cases=60", f"data.store={args.workdir / 'store'}",
                                "data.slice_size=[64,64]", "ray.num_cpus=2"])
    phantom_store(args.workdir, config)
    rows = []
    for domain in ("healthy", "pathological"):
        samples = read_val_samples(config, domain, args.samples)
        hu, lung = to_hu(samples["image"][:, 0], config.data.hu_norm), samples["lung"] > 0
        rows += [_row(domain, "disease share", hu, lung, disease_share),
                 _row(domain, f"naive share > {NAIVE_HU} HU", hu, lung, _naive)]
        if domain == "healthy":
            blurred = np.stack([gaussian_filter(h, 1.0) for h in hu])
            rows.append(_row("healthy blurred", "disease share", blurred, lung, disease_share))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "disease_score.csv", index=False)


def _row(domain: str, score: str, hu: np.ndarray, lung: np.ndarray, share) -> dict:
    """The pooled score of a set of slices and the mean and sd of its per-slice scores."""
    per_slice = [share(hu[i:i + 1], lung[i:i + 1]) for i in range(len(hu)) if lung[i].any()]
    return {"slices": domain, "score": score, "pooled": share(hu, lung),
            "per_slice_mean": float(np.mean(per_slice)), "per_slice_sd": float(np.std(per_slice))}


def _naive(hu: np.ndarray, lung: np.ndarray) -> float:
    return float((hu[lung] > NAIVE_HU).mean())


if __name__ == "__main__":
    main()
