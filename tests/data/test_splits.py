"""Splits by case: disjoint, stratified by domain, persisted in the store, never moving a case."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from raylung.config import DataConfig
from raylung.data.splits import SPLITS_FILE, assign_splits, cases_of, store_splits
from raylung.errors import InputError
from raylung.store.case_store import CaseStore


def _manifest(n_healthy=10, n_path=6):
    ids = [f"h{i}" for i in range(n_healthy)] + [f"p{i}" for i in range(n_path)]
    domains = ["healthy"] * n_healthy + ["pathological"] * n_path
    return pd.DataFrame({"case_id": ids, "domain": domains})


def test_every_case_in_exactly_one_split(tmp_path):
    manifest, store = _manifest(), CaseStore(tmp_path / "store")
    cfg = DataConfig(split_fractions=(0.6, 0.2, 0.2))
    parts = [set(cases_of(store, manifest, s, cfg)["case_id"]) for s in ("train", "val", "test")]
    assert set.union(*parts) == set(manifest["case_id"])
    assert sum(len(p) for p in parts) == len(manifest)


def test_stratified_counts():
    splits = assign_splits(_manifest(), (0.6, 0.2, 0.2), 0)
    counts = pd.crosstab(_manifest()["domain"].to_numpy(), splits.to_numpy())
    assert counts.loc["healthy"].tolist() == [2, 6, 2]      # columns sorted: test, train, val
    assert counts.loc["pathological"].tolist() == [1, 4, 1]


def test_seeded():
    small = _manifest(10, 6)
    a = assign_splits(small, (0.7, 0.15, 0.15), 3)
    assert a.equals(assign_splits(small, (0.7, 0.15, 0.15), 3))
    assert not a.equals(assign_splits(small, (0.7, 0.15, 0.15), 4))


def test_adding_cases_keeps_every_earlier_case_in_its_split(tmp_path):
    store, cfg = CaseStore(tmp_path / "store"), DataConfig()
    first = store_splits(store, _manifest(10, 6), cfg)
    assert (tmp_path / "store" / SPLITS_FILE).exists()
    grown = store_splits(store, _manifest(30, 16), cfg)
    assert grown.reindex(first.index).equals(first)
    counts = grown.groupby(_manifest(30, 16).set_index("case_id")["domain"]).value_counts()
    assert counts["healthy"].to_dict() == {"train": 21, "val": 5, "test": 4}   # 0.7/0.15/0.15
    assert store_splits(store, _manifest(10, 6), cfg).equals(first)   # read back, not redrawn


def test_each_scheme_is_kept_apart(tmp_path):
    store = CaseStore(tmp_path / "store")
    store_splits(store, _manifest(), DataConfig())
    store_splits(store, _manifest(), DataConfig(split_fractions=(1, 0, 0)))
    schemes = json.loads((tmp_path / "store" / SPLITS_FILE).read_text())["schemes"]
    assert sorted(schemes) == ["seed=0 fractions=0.7,0.15,0.15", "seed=0 fractions=1,0,0"]
    assert set(schemes["seed=0 fractions=1,0,0"].values()) == {"train"}


def test_user_split_file(tmp_path):
    manifest = _manifest(2, 1)
    path = tmp_path / "split.csv"
    path.write_text("case_id,split\nh0,test\nh1,train\np0,val\n")
    splits = store_splits(CaseStore(tmp_path / "store"), manifest, DataConfig(splits_file=str(path)))
    assert splits.tolist() == ["test", "train", "val"]
    path.write_text("case_id,split\nh0,test\nh1,dev\n")
    with pytest.raises(InputError, match=r"split.csv: unknown split name\(s\) \['dev'\]"):
        store_splits(CaseStore(tmp_path / "store"), manifest, DataConfig(splits_file=str(path)))
    path.write_text("case_id,split\nh0,test\n")
    with pytest.raises(InputError, match="2 case.s. of the store have no split, e.g. 'h1'"):
        store_splits(CaseStore(tmp_path / "store"), manifest, DataConfig(splits_file=str(path)))
    path.write_text("case_id,split\nh0,test\nh1,train\np0,val\nh0,train\n")
    with pytest.raises(InputError, match="split.csv: case 'h0' is listed more than once$"):
        store_splits(CaseStore(tmp_path / "store"), manifest, DataConfig(splits_file=str(path)))
    path.write_text("case_id,split\nh0,test\nh1,\np0,dev\n")
    with pytest.raises(InputError, match="split.csv: line 3 has no case_id or no split$"):
        store_splits(CaseStore(tmp_path / "store"), manifest, DataConfig(splits_file=str(path)))


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        cases_of(CaseStore(tmp_path / "store"), _manifest(), "dev", DataConfig())
