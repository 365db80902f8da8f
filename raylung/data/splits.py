"""Train/val/test splits by case: stratified by domain, never sharing a case, and persisted.

A store keeps every split it has handed out in ``splits.json``, one assignment per scheme
(seed and fractions), so adding cases never moves an earlier case between splits: new cases
fill the splits that are furthest below their share. ``data.splits_file`` (CSV with
``case_id,split``) replaces the scheme with the user's own split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from raylung.config import DataConfig
from raylung.errors import InputError
from raylung.store.case_store import CaseStore, StoreError

SPLITS = ("train", "val", "test")
SPLITS_FILE = "splits.json"


def assign_splits(manifest: pd.DataFrame, fractions: tuple[float, float, float], seed: int,
                  known: Mapping[str, str] | None = None) -> pd.Series:
    """Split name per case id. Cases in ``known`` keep their split; within each domain the
    others are taken in the order of a seeded hash of their id."""
    known = dict(known or {})
    parts = []
    for _, cases in manifest.groupby("domain", sort=True):
        ordered = sorted(cases["case_id"], key=lambda c: _rank(c, seed))
        kept = {c: known[c] for c in ordered if c in known}
        if kept:
            names = _extend(kept, [c for c in ordered if c not in kept], fractions)
        else:
            names = dict(zip(ordered, np.repeat(SPLITS, _counts(len(ordered), fractions))))
        parts.append(pd.Series(names, name="split", dtype=object))
    return pd.concat(parts).reindex(manifest["case_id"])


def store_splits(store: CaseStore, manifest: pd.DataFrame, cfg: DataConfig) -> pd.Series:
    """The split of every case in ``manifest``: the user's file, or the store's persisted
    scheme extended to new cases (and written back when it grew)."""
    if cfg.splits_file:
        return read_split_file(cfg.splits_file, manifest)
    schemes = _read_schemes(store)
    key = scheme_key(cfg)
    stored = schemes.get(key, {})
    splits = assign_splits(manifest, cfg.split_fractions, cfg.seed, stored)
    grown = {**stored, **splits.to_dict()}
    if grown != stored:
        schemes[key] = grown
        store.write_bytes(SPLITS_FILE, json.dumps({"schemes": schemes}, indent=1).encode())
    return splits


def cases_of(store: CaseStore, manifest: pd.DataFrame, split: str,
             cfg: DataConfig) -> pd.DataFrame:
    """The manifest rows of one split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    splits = store_splits(store, manifest, cfg)
    return manifest[splits.to_numpy() == split].reset_index(drop=True)


def scheme_key(cfg: DataConfig) -> str:
    """The name a split scheme is kept under in ``splits.json``."""
    return f"seed={cfg.seed} fractions={','.join(f'{f:g}' for f in cfg.split_fractions)}"


def read_split_file(path: str | Path, manifest: pd.DataFrame) -> pd.Series:
    """A user's ``case_id,split`` CSV, checked: known split names, every store case listed."""
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(path, f"unreadable split file ({err})") from None
    if not {"case_id", "split"} <= set(table.columns):
        raise InputError(path, "split file needs the columns case_id,split")
    blank = table.index[table[["case_id", "split"]].isna().any(axis=1)]
    if len(blank):
        raise InputError(path, f"line {blank[0] + 2} has no case_id or no split")
    twice = table["case_id"][table["case_id"].duplicated()]
    if len(twice):
        raise InputError(path, f"case {twice.iloc[0]!r} is listed more than once")
    bad = sorted(set(table["split"]) - set(SPLITS))
    if bad:
        raise InputError(path, f"unknown split name(s) {bad} (expected {', '.join(SPLITS)})")
    splits = table.set_index("case_id")["split"].reindex(manifest["case_id"])
    missing = splits[splits.isna()].index.tolist()
    if missing:
        raise InputError(path, f"{len(missing)} case(s) of the store have no split, e.g. "
                               f"{missing[0]!r}")
    return splits


def _read_schemes(store: CaseStore) -> dict[str, dict[str, str]]:
    try:
        return json.loads(store.read_bytes(SPLITS_FILE))["schemes"]
    except StoreError:
        return {}


def _extend(kept: dict[str, str], new: list[str],
            fractions: tuple[float, float, float]) -> dict[str, str]:
    """Each new case joins the split furthest below its share of the grown domain."""
    names = dict(kept)
    total = len(kept) + len(new)
    for case in new:
        have = [list(names.values()).count(s) for s in SPLITS]
        deficit = [f * total - h for f, h in zip(fractions, have)]
        names[case] = SPLITS[int(np.argmax(deficit))]
    return names


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
