"""Splits by case: disjoint, stable for a seed, stratified by domain."""

from __future__ import annotations

import pandas as pd
import pytest

from raylung.data.splits import assign_splits, cases_of


def _manifest(n_healthy=10, n_path=6):
    ids = [f"h{i}" for i in range(n_healthy)] + [f"p{i}" for i in range(n_path)]
    domains = ["healthy"] * n_healthy + ["pathological"] * n_path
    return pd.DataFrame({"case_id": ids, "domain": domains})


def test_every_case_in_exactly_one_split():
    manifest = _manifest()
    parts = [set(cases_of(manifest, s, (0.6, 0.2, 0.2), 0)["case_id"]) for s in
             ("train", "val", "test")]
    assert set.union(*parts) == set(manifest["case_id"])
    assert sum(len(p) for p in parts) == len(manifest)


def test_stratified_counts():
    splits = assign_splits(_manifest(), (0.6, 0.2, 0.2), 0)
    counts = pd.crosstab(_manifest()["domain"].to_numpy(), splits.to_numpy())
    assert counts.loc["healthy"].tolist() == [2, 6, 2]      # columns sorted: test, train, val
    assert counts.loc["pathological"].tolist() == [1, 4, 1]


def test_stable_for_seed_and_when_cases_are_added():
    small, large = _manifest(10, 6), _manifest(12, 6)
    a = assign_splits(small, (0.7, 0.15, 0.15), 3)
    assert a.equals(assign_splits(small, (0.7, 0.15, 0.15), 3))
    assert not a.equals(assign_splits(small, (0.7, 0.15, 0.15), 4))
    b = assign_splits(large, (0.7, 0.15, 0.15), 3)
    moved = (a != b.reindex(a.index)).sum()
    assert moved <= 2, "adding two cases should move at most a couple of others"


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        cases_of(_manifest(), "dev", (0.7, 0.15, 0.15), 0)
