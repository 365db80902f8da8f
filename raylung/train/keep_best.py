"""The run's best checkpoint, kept aside from Ray Train's retention.

Ray Train keeps the latest ``run.keep_checkpoints`` checkpoints; ``KeepBest`` copies each new
best by the run's metric to ``<run>/best/<checkpoint name>/`` with its metrics in ``best.json``.
The new copy is complete before the old one goes, so a crash leaves at least one whole copy,
locally and on object storage, and a resumed run compares against the best so far.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import fsspec
import pyarrow.fs
import ray.train
from ray.train import UserCallback

from raylung.train.metrics_log import rank_zero_scalars

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
        folder = source.parent / BEST_FOLDER
        target = str(folder / source.name)
        if self.best is None:
            self.best = max((best for _, best, _ in _copies(fs, str(folder))), default=None)
        if self.best is not None and value <= self.best:
            return
        _copy_checkpoint(fs, str(source), target, self.metric, metrics)
        self.best = value
        for info in fs.get_file_info(pyarrow.fs.FileSelector(str(folder))):
            if info.path.rstrip("/") != target:
                fs.delete_dir(info.path)


def kept_best(run_folder: str, storage_options: dict) -> tuple[str, dict[str, Any]] | None:
    """The best copy's folder (path or URL, as ``run_folder``) and its metrics; None when
    the run kept none (no metric reported)."""
    fs, root = fsspec.core.url_to_fs(run_folder, **storage_options)
    copies = _copies(pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs)), f"{root}/{BEST_FOLDER}")
    if not copies:
        return None
    path, _, metrics = max(copies, key=lambda copy: copy[1])
    return f"{run_folder}/{BEST_FOLDER}/{PurePosixPath(path).name}", metrics


def checkpoint_url(run_folder: str, checkpoint: ray.train.Checkpoint) -> str:
    """Where ``checkpoint`` lies as a path or URL a user can open (Ray's own path drops the
    URL scheme)."""
    return f"{run_folder}/{PurePosixPath(checkpoint.path).name}"


def _copies(fs: pyarrow.fs.FileSystem, folder: str) -> list[tuple[str, float, dict[str, Any]]]:
    """The complete copies under ``folder`` (those with their marker): path, value of the
    metric they were kept by, and their metrics."""
    copies = []
    for info in fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True)):
        marker = fs.get_file_info(f"{info.path}/{MARKER}")
        if info.type == pyarrow.fs.FileType.Directory and marker.type == pyarrow.fs.FileType.File:
            with fs.open_input_stream(marker.path) as stream:
                saved = json.loads(stream.read())
            copies.append((info.path, saved["metrics"][saved["best_by"]], saved["metrics"]))
    return copies


def _copy_checkpoint(fs: pyarrow.fs.FileSystem, source: str, target: str, metric: str,
                     metrics: list[dict[str, Any]]) -> None:
    """Copy the checkpoint folder; its marker (rank 0's step and numeric metrics), written
    last and whole (a temporary name, then a rename), makes the copy count."""
    fs.delete_dir_contents(target, missing_dir_ok=True)
    pyarrow.fs.copy_files(source, target, source_filesystem=fs, destination_filesystem=fs)
    step, scalars = rank_zero_scalars(metrics)
    with fs.open_output_stream(f"{target}/.{MARKER}.tmp") as stream:
        marker = {"best_by": metric, "metrics": {"step": step, **scalars}}
        stream.write(json.dumps(marker, indent=2).encode())
    fs.move(f"{target}/.{MARKER}.tmp", f"{target}/{MARKER}")
