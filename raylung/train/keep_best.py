"""The run's best checkpoint, kept aside from Ray Train's retention.

Ray Train keeps the latest ``run.keep_checkpoints`` checkpoints; ``KeepBest`` copies each new
best by the run's metric to ``<run>/best/<checkpoint name>/`` with its metrics in ``best.json``.
The new copy is complete before the old one goes, so a crash leaves at least one whole copy,
locally and on object storage, and a resumed run compares against the best so far.
"""

from __future__ import annotations

import json
from numbers import Real
from pathlib import PurePosixPath
from typing import Any

import fsspec
import pyarrow.fs
import ray.train
from ray.train import UserCallback

BEST_FOLDER = "best"
MARKER = "best.json"


class KeepBest(UserCallback):
    """On Ray Train's controller: copy every checkpoint whose ``metric`` (rank 0's report)
    beats the best so far to the run's ``best/`` folder, then delete everything else there
    (the previous copy, or one a crash left without its marker)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.best: float | None = None

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                     checkpoint: ray.train.Checkpoint | None) -> None:
        value = metrics[0].get(self.metric) if metrics else None
        if checkpoint is None or value is None:
            return
        fs, source = checkpoint.filesystem, PurePosixPath(checkpoint.path)
        folder, target = str(source.parent / BEST_FOLDER), str(source.parent / BEST_FOLDER / source.name)
        if self.best is None:
            self.best = max((metrics[self.metric] for _, metrics in _copies(fs, folder)),
                            default=None)
        if self.best is not None and value <= self.best:
            return
        _copy_checkpoint(fs, str(source), target, self.metric, metrics[0])
        self.best = value
        for info in fs.get_file_info(pyarrow.fs.FileSelector(folder)):
            if info.path.rstrip("/") != target:
                fs.delete_dir(info.path)


def kept_best(run_folder: str, storage_options: dict) -> tuple[str, dict[str, Any]] | None:
    """The best copy's folder (path or URL, as ``run_folder``) and its metrics; None when
    the run kept none (no metric reported)."""
    fs, root = fsspec.core.url_to_fs(run_folder, **storage_options)
    found = []
    for marker in fs.glob(f"{root}/{BEST_FOLDER}/*/{MARKER}"):
        saved = json.loads(fs.cat_file(marker))
        folder = f"{run_folder}/{BEST_FOLDER}/{PurePosixPath(marker).parent.name}"
        found.append((saved["metrics"][saved["best_by"]], folder, saved["metrics"]))
    return max(found, key=lambda item: item[0])[1:] if found else None


def checkpoint_url(run_folder: str, checkpoint: ray.train.Checkpoint) -> str:
    """Where ``checkpoint`` lies as a path or URL a user can open (Ray's own path drops the
    URL scheme)."""
    return f"{run_folder}/{PurePosixPath(checkpoint.path).name}"


def _copies(fs: pyarrow.fs.FileSystem, folder: str) -> list[tuple[str, dict[str, Any]]]:
    """The complete copies under ``folder`` (those with their marker) and their metrics."""
    copies = []
    for info in fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True)):
        marker = fs.get_file_info(f"{info.path}/{MARKER}")
        if info.type == pyarrow.fs.FileType.Directory and marker.type == pyarrow.fs.FileType.File:
            with fs.open_input_stream(marker.path) as stream:
                copies.append((info.path, json.loads(stream.read())["metrics"]))
    return copies


def _copy_checkpoint(fs: pyarrow.fs.FileSystem, source: str, target: str, metric: str,
                     metrics: dict[str, Any]) -> None:
    """Copy the checkpoint folder; its marker, written last, makes the copy count."""
    fs.delete_dir_contents(target, missing_dir_ok=True)
    pyarrow.fs.copy_files(source, target, source_filesystem=fs, destination_filesystem=fs)
    numbers = {k: v for k, v in metrics.items() if isinstance(v, Real) and not isinstance(v, bool)}
    with fs.open_output_stream(f"{target}/{MARKER}") as stream:
        stream.write(json.dumps({"best_by": metric, "metrics": numbers}, indent=2).encode())
