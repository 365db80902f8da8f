"""The raylung store: one zarr v3 group per case, plus tables and files beside them.

Layout (``STORE`` is a local path or an fsspec URL such as ``s3://bucket/store``)::

    STORE/zarr.json                root group
    STORE/cases/<case_id>/         group: image int16, lung uint8, lesion uint8 (when present),
                                   twin int16 (a phantom's diseased twin, when written),
                                   lung_centres int32 (N, 3): cached patch centres on the lung;
                                   volumes are sharded: small inner chunks, one file per shard
    STORE/manifest.parquet         one row per committed case
    STORE/summary.json             data-derived settings (spacing, shapes, HU statistics)
    STORE/ingest_report.csv        failures of the last ingest run
    STORE/splits.json              the train/val/test split of every case, per scheme
    STORE/raylung_config.yaml      the resolved config of the last ingest run

A case is committed by writing ``attrs["raylung"]["committed"]`` after all its chunks are
written; readers only open committed cases, so none ever sees half a case, on a local disk or on
object storage alike. A rewrite removes the old group first.
"""

from __future__ import annotations

import io
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import yaml
import zarr
from fsspec.implementations.local import LocalFileSystem

from raylung.io.write import write_bytes
from raylung.store.volume import LocalVolume, Volume

CASES = "cases"
CONFIG = "raylung_config.yaml"  # the resolved config of the last ingest


class StoreError(ValueError):
    """A store that cannot be opened or a case that is missing or incomplete."""


class CaseStore:
    """Read and write cases and side files of one raylung store."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = str(url).rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self._local = isinstance(self.fs, LocalFileSystem)

    def group(self, mode: str = "a") -> zarr.Group:
        """The root zarr group (created on first write)."""
        try:
            return zarr.open_group(self.url, mode=mode, **self._zarr_kw())
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            raise StoreError(f"{self.url}: no raylung store here "
                             "(run `raylung ingest` first)") from None

    def create(self) -> None:
        """Create the root and ``cases`` groups once, before parallel writers start."""
        self.group("a").require_group(CASES)

    def case_ids(self) -> list[str]:
        """Ids of every committed case, sorted."""
        folder = f"{self.root}/{CASES}"
        if not self.fs.exists(folder):
            return []
        names = [entry["name"].rstrip("/").rsplit("/", 1)[-1]  # without parsing each case
                 for entry in self.fs.ls(folder, detail=True) if entry["type"] == "directory"]
        return sorted(name for name in names if self.committed(name) is not None)

    def committed(self, case_id: str) -> dict[str, Any] | None:
        """The commit record of a case, or None when it is absent or was never finished (its
        metadata missing, or cut short: the case is written again)."""
        try:
            attrs = zarr.open_group(self._case_url(case_id), mode="r", **self._zarr_kw()).attrs
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError):
            return None
        return attrs.get("raylung", {}).get("committed")

    def recommit(self, case_id: str, commit: dict[str, Any]) -> None:
        """Replace the commit record of a committed case whose data stays as it is."""
        group = zarr.open_group(self._case_url(case_id), mode="r+", **self._zarr_kw())
        group.attrs["raylung"] = {**group.attrs["raylung"], "committed": commit}

    def open_case(self, case_id: str) -> zarr.Group:
        """The group of a committed case; raises StoreError for a missing or partial case."""
        if self.committed(case_id) is None:
            raise StoreError(f"{self._case_url(case_id)}: case {case_id!r} is missing or "
                             "incomplete")
        return self.group("r")[f"{CASES}/{case_id}"]

    def write_case(
        self,
        case_id: str,
        arrays: dict[str, np.ndarray],
        attrs: dict[str, Any],
        commit: dict[str, Any],
        chunks: tuple[int, int, int],
        level: int,
        shards: tuple[int, int, int] | None = None,
    ) -> None:
        """Write a whole case, then commit it; an older version of the case is removed first.

        Volumes get ``chunks`` inside shards of ``shards`` (None: unsharded). Safe to call from
        parallel tasks once :meth:`create` has run.
        """
        self.remove_case(case_id)
        try:
            group = self.group("r+")[CASES].create_group(case_id)
            for name, data in arrays.items():
                _create_array(group, name, data, chunks, shards, level)
                self.volume(case_id, name)[...] = data
            group.attrs["raylung"] = {**attrs, "committed": commit}
        except BaseException:
            self.remove_case(case_id)
            raise

    def volume(self, case_id: str, name: str) -> Volume:
        """Array ``name`` of a case for chunk reads and writes (TensorStore on a local disk)."""
        if self._local:
            return LocalVolume(f"{self.root}/{CASES}/{case_id}/{name}")
        return zarr.open_array(f"{self._case_url(case_id)}/{name}", mode="r+", **self._zarr_kw())

    def remove_case(self, case_id: str) -> None:
        """Delete a case group, complete or not (no-op when absent)."""
        path = f"{self.root}/{CASES}/{case_id}"
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a side file atomically (temp + rename locally; one PUT on object storage)."""
        write_bytes(f"{self.url}/{name}", data, self.storage_options)

    def read_bytes(self, name: str) -> bytes:
        """Read a side file; StoreError when it does not exist."""
        try:
            return self.fs.cat_file(f"{self.root}/{name}")
        except FileNotFoundError:
            raise StoreError(f"{self.url}/{name}: not found (run `raylung ingest` first)") from None

    def ingest_settings(self) -> dict[str, Any] | None:
        """The ``ingest`` section of the store's ``raylung_config.yaml``; None without one."""
        try:
            return yaml.safe_load(self.read_bytes(CONFIG)).get("ingest", {})
        except StoreError:
            return None

    def write_table(self, name: str, table: pd.DataFrame) -> None:
        """Write a pandas table as parquet or CSV, chosen by the file name."""
        buffer = io.BytesIO()
        if name.endswith(".parquet"):
            table.to_parquet(buffer, index=False)
        else:
            table.to_csv(buffer, index=False)
        self.write_bytes(name, buffer.getvalue())

    def read_table(self, name: str) -> pd.DataFrame:
        """Read a table written by :meth:`write_table`."""
        data = io.BytesIO(self.read_bytes(name))
        return pd.read_parquet(data) if name.endswith(".parquet") else pd.read_csv(data)

    def disk_bytes(self, case_id: str | None = None) -> int:
        """Bytes on disk of one case, or of the whole store."""
        path = f"{self.root}/{CASES}/{case_id}" if case_id else self.root
        return int(self.fs.du(path, total=True))

    def _case_url(self, case_id: str) -> str:
        return f"{self.url}/{CASES}/{case_id}"

    def _zarr_kw(self) -> dict[str, Any]:
        return {} if self._local else {"storage_options": self.storage_options}


def _create_array(group: zarr.Group, name: str, data: np.ndarray, chunks: tuple[int, int, int],
                  shards: tuple[int, int, int] | None, level: int) -> None:
    """An empty array for ``data``: volumes (3-D) get the configured chunks and shards, clipped
    to small volumes; small tables (e.g. centres) are one chunk."""
    volume = data.ndim == 3
    chunk = (tuple(min(c, s) for c, s in zip(chunks, data.shape)) if volume
             else tuple(max(1, s) for s in data.shape))  # an empty table still has a chunk
    shard = None
    if volume and shards is not None:  # a multiple of the chunk, no larger than needed
        shard = tuple(min(h, -(-s // c) * c) for h, s, c in zip(shards, data.shape, chunk))
    group.create_array(
        name, shape=data.shape, dtype=data.dtype, chunks=chunk, shards=shard,
        compressors=zarr.codecs.ZstdCodec(level=level),
        dimension_names=("z", "y", "x") if volume else None,
    )
