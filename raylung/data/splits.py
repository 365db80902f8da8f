"""Train/val/test splits by case: stable for a seed, stratified by domain, never sharing a case."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def assign_splits(manifest: pd.DataFrame, fractions: tuple[float, float, float],
                  seed: int) -> pd.Series:
    """Split name per case id. Within each domain, cases are ordered by a seeded hash of their
    id, so adding a case never moves the others between splits' order."""
    parts = []
    for _, cases in manifest.groupby("domain", sort=True):
        ordered = sorted(cases["case_id"], key=lambda c: _rank(c, seed))
        counts = _counts(len(ordered), fractions)
        names = np.repeat(SPLITS, counts)
        parts.append(pd.Series(names, index=ordered, name="split"))
    return pd.concat(parts).reindex(manifest["case_id"])


def cases_of(manifest: pd.DataFrame, split: str, fractions: tuple[float, float, float],
             seed: int) -> pd.DataFrame:
    """The manifest rows of one split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    splits = assign_splits(manifest, fractions, seed)
    return manifest[splits.to_numpy() == split].reset_index(drop=True)


def _rank(case_id: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}:{case_id}".encode()).digest()


def _counts(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Cases per split; val and test get at least one case each when their fraction is > 0
    and there are enough cases to leave one for training."""
    val, test = (int(round(n * f)) for f in fractions[1:])
    if n >= 3:
        val = max(val, 1 if fractions[1] > 0 else 0)
        test = max(test, 1 if fractions[2] > 0 else 0)
    val = min(val, n)
    test = min(test, n - val)
    return [n - val - test, val, test]
