"""The streaming dataset: sample specs -> Ray Data actors that read crops from the zarr store.

    cfg = load_config(None, ["data.store=demo_out/store", "data.mode=patch3d"])
    ds = build_dataset(cfg, "train", epochs=range(2), domain="healthy")
    per_rank = build_shards(cfg, "train", range(2), "healthy", world=2)  # one per worker

Ray Train gives each worker its own shard's dataset (raylung/train/runner.py), so which worker
trains on which sample is fixed by the specs, not by which worker asks first.

Each epoch's specs are drawn by a read task of its own (``SpecSource``) and crops are read lazily
by an actor pool, so neither the driver nor the object store ever holds the whole data set:
memory stays flat in the number of epochs and bounded by Ray Data's backpressure.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray

from raylung.config import PREPARATION, Config, ConfigError, DataConfig, IngestConfig
from raylung.data.sample import make_sample
from raylung.data.spec_source import SpecSource
from raylung.data.specs import chosen_for_synthesis, draw_specs
from raylung.data.splits import cases_of
from raylung.errors import InputError
from raylung.store.case_store import CaseStore, StoreError
from raylung.store.manifest import read_manifest
from raylung.store.volume import Volume


class SampleReadError(RuntimeError):
    """A crop that could not be read; the message names the case and the store."""


def build_dataset(cfg: Config, split: str, epochs: Iterable[int], domain: str | None = None,
                  labelled_only: bool = False) -> ray.data.Dataset:
    """A lazily read dataset of one split: ``data.samples_per_epoch`` samples per epoch."""
    return build_shards(cfg, split, epochs, domain, labelled_only, world=1)[0]


def build_shards(cfg: Config, split: str, epochs: Iterable[int], domain: str | None = None,
                 labelled_only: bool = False, world: int = 1) -> list[ray.data.Dataset]:
    """One dataset per training worker: rank r's holds every world-th sample of each epoch
    from the r-th. The cases are selected and put in the object store once for all ranks."""
    store = open_store(cfg)
    cases = select_cases(store, cfg.data, split, domain, labelled_only)
    centres = load_centres(store, cases) if cfg.data.mode == "patch3d" else {}
    inputs = ray.put((cases, centres))
    stream = _stream_key(split, domain, labelled_only)
    return [_shard(store, inputs, cfg, list(epochs), stream, (rank, world))
            for rank in range(world)]


def _shard(store: CaseStore, inputs: ray.ObjectRef, cfg: Config, epochs: list[int],
           stream: str, shard: tuple[int, int]) -> ray.data.Dataset:
    """Shard ``(rank, world)`` of a stream: its specs' read tasks, then the crop readers."""
    # One read task per epoch, one at a time, without a CPU of its own: drawing specs is
    # light, and a read task waiting for a CPU that trainers and readers hold would stall the
    # stream. Asking for more blocks than tasks makes Ray Data split each epoch's specs into
    # blocks of about read_block, so the first crops come before the whole epoch's.
    blocks = len(epochs) * -(-cfg.data.samples_per_epoch // shard[1] // cfg.data.read_block)
    specs = ray.data.read_datasource(SpecSource(inputs, cfg.data, epochs, stream, shard),
                                     override_num_blocks=max(1, blocks), num_cpus=0,
                                     concurrency=1)
    dataset = specs.map_batches(
        CropReader,
        fn_constructor_kwargs={"url": store.url, "options": store.storage_options,
                               "cfg": cfg.data},
        batch_size=cfg.data.read_block,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=cfg.data.read_concurrency),
        num_cpus=cfg.data.reader_cpus,
    )
    dataset.context.execution_options.preserve_order = True
    return dataset


class NoCasesError(ValueError):
    """No case is left for a stream: the store, split or domain has none of those asked for
    (what a caller may step around; any other error of reading the store is not)."""


def select_cases(store: CaseStore, cfg: DataConfig, split: str, domain: str | None,
                 labelled_only: bool) -> pd.DataFrame:
    """The manifest rows a stream draws from; a clear error when none are left."""
    manifest = read_manifest(store)
    if manifest.empty:
        raise NoCasesError(f"{cfg.store}: the store holds no cases (did every case fail at "
                           "ingest? see its ingest_report.csv)")
    cases = cases_of(store, manifest, split, cfg)
    if domain is not None:
        cases = cases[cases["domain"] == domain]
    if labelled_only:
        cases = cases[cases["labelled"]]
    if cases.empty:
        what = " ".join(w for w in (("labelled" if labelled_only else ""), domain or "") if w)
        raise NoCasesError(f"{cfg.store}: no {what + ' ' if what else ''}cases in split "
                           f"{split!r} ({len(manifest)} cases in the store)")
    return cases.reset_index(drop=True)


def read_val_samples(cfg: Config, domain: str, count: int) -> dict[str, np.ndarray]:
    """``count`` fixed, unaugmented labelled val samples of one domain, read in this process:
    the same every run, so validations of different runs and checkpoints compare."""
    val = cfg.model_copy(deep=True)
    val.data.samples_per_epoch = count
    val.data.augment.enabled = False
    val.data.box_slices = 0.0  # G is scored on the lung, where it draws disease
    val.data.twin_p = 0.0      # the real domains, not the oracle's twins
    store = open_store(val)
    cases = select_cases(store, val.data, "val", domain, labelled_only=True)
    centres = load_centres(store, cases) if val.data.mode == "patch3d" else {}
    specs = draw_specs(cases, centres, val.data, 0, _stream_key("val", domain, True))
    reader = CropReader(store.url, store.storage_options, val.data)
    return reader({key: np.array([s[key] for s in specs]) for key in specs[0]})


def check_sources(cases: pd.DataFrame, split: str) -> None:
    """Validation and the test report read the scans that ingest read: they must still exist."""
    for row in cases.itertuples():
        for path in (row.source_image, row.source_lung):
            if path and not Path(path).exists():
                raise InputError(path, f"source file of {split} case {row.case_id} not found "
                                       "(scans are scored in their own grid, read from the "
                                       "files ingest read)")


def load_centres(store: CaseStore, cases: pd.DataFrame) -> dict[str, np.ndarray]:
    """The cached lung centres of every labelled case (small: a few thousand points each)."""
    return {c: store.open_case(c)["lung_centres"][...]
            for c in cases.loc[cases["labelled"], "case_id"]}


# Cases a reader keeps open, the most recently read: a store of thousands of cases would
# otherwise keep a handle, and its chunk cache, for every case the reader ever read.
OPEN_CASES = 32


class CropReader:
    """Ray Data actor: a batch of specs in, a batch of samples out; keeps the last
    ``open_cases`` cases it read open."""

    def __init__(self, url: str, options: dict[str, Any], cfg: DataConfig,
                 open_cases: int = OPEN_CASES) -> None:
        self.store = CaseStore(url, options)
        self.cfg = cfg
        self.open_cases = open_cases
        self._cases: OrderedDict[str, tuple[dict[str, Volume], dict[str, Any]]] = OrderedDict()

    def __call__(self, specs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys = list(specs)
        rows = [self._sample({k: _scalar(specs[k][i]) for k in keys})
                for i in range(len(specs[keys[0]]))]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    def _sample(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            volumes, attrs = self._case(spec["case_id"])
            twin = "twin" in volumes and chosen_for_synthesis(spec["seed"], self.cfg.twin_p,
                                                              oracle=True)
            if twin:
                volumes = {**volumes, "image": volumes["twin"]}
            sample = make_sample(volumes, attrs, spec, self.cfg)
            if self.cfg.twin_p > 0:  # the oracle's samples count as synthetic, like G's
                sample["synthetic"] = twin
            return sample
        except (StoreError, ValueError, OSError, RuntimeError, KeyError) as err:
            raise SampleReadError(
                f"{self.store.url}/cases/{spec['case_id']}: cannot read the crop at z,y,x="
                f"{spec['z']},{spec['y']},{spec['x']}: {type(err).__name__}: {err}") from None

    def _case(self, case_id: str) -> tuple[dict[str, Volume], dict[str, Any]]:
        """The case's image and lung volumes (TensorStore-backed locally), its diseased twin
        when ``data.twin_p`` asks for it and the labelled case has one, and its attributes."""
        if case_id not in self._cases:
            group = self.store.open_case(case_id)
            names = ("image", "lung", "twin") if self.cfg.twin_p > 0 else ("image", "lung")
            volumes = {name: self.store.volume(case_id, name)
                       for name in names if name in group.array_keys()}
            self._cases[case_id] = (volumes, dict(group.attrs["raylung"]))
            if len(self._cases) > self.open_cases:
                self._cases.popitem(last=False)
        self._cases.move_to_end(case_id)
        return self._cases[case_id]


def _stream_key(split: str, domain: str | None, labelled_only: bool) -> str:
    """Names a stream's specs: the same key draws the same samples."""
    return f"{split}/{domain}/{labelled_only}"


def with_store_ingest(config: Config) -> Config:
    """``config`` with the ``PREPARATION`` settings the store was ingested with; one line
    where the job sets one of them otherwise, or where there is no store (before Ray starts)."""
    store = open_store(config)
    saved = store.ingest_settings()
    if saved is None:
        read_manifest(store)  # no store at all: one line; a store without its config: as is
        return config
    stored = IngestConfig.model_validate(
        {**config.ingest.model_dump(), **{k: saved[k] for k in PREPARATION if k in saved}})
    default = IngestConfig()
    for key in PREPARATION:
        mine, theirs = getattr(config.ingest, key), getattr(stored, key)
        if mine != theirs and mine != getattr(default, key):
            raise ConfigError(f"ingest.{key}={json.dumps(mine)}: the store {store.url} was "
                              f"ingested with {json.dumps(theirs)}, which its runs use; drop the "
                              "override")
    adopted = config.model_copy(deep=True)
    adopted.ingest = stored
    return adopted


def open_store(cfg: Config) -> CaseStore:
    """The store of ``data.store``; one line when it is not set."""
    if not cfg.data.store:
        raise ValueError("data.store is not set: give the store path, "
                         "e.g. data.store=demo_out/store")
    return CaseStore(cfg.data.store, cfg.storage.storage_options)


def _scalar(value: Any) -> Any:
    """numpy scalars from a batch back to Python values (strings stay strings)."""
    return value.item() if isinstance(value, np.generic) else value
