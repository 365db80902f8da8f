"""The best checkpoint's copy, on local disk and on a local S3 server, as Ray Train's
controller drives it: one report after another, a crash mid-copy, a resumed run."""

from __future__ import annotations

import fsspec
import pyarrow.fs
import pytest
from ray.train import Checkpoint

from raylung.train.keep_best import KeepBest, kept_best


@pytest.fixture(params=["local", "s3"])
def run_folder(request, tmp_path):
    """(run folder path or URL, its fsspec options) on local disk or on moto's S3."""
    if request.param == "local":
        return str(tmp_path / "run"), {}
    options = request.getfixturevalue("s3_options")
    return f"s3://raylung-test/keep_best/{tmp_path.name}", options


def _report(callback: KeepBest, run: str, options: dict, step: int, dice: float | None) -> None:
    """Write checkpoint ``step`` (two files) the way Ray Train persists it, then report it."""
    fs, root = fsspec.core.url_to_fs(run, **options)
    folder = f"{root}/checkpoint_{step:06d}"
    fs.makedirs(f"{folder}/shard", exist_ok=True)
    fs.pipe({f"{folder}/weights.pt": f"weights {step}".encode(),
             f"{folder}/shard/rank_1.pt": f"shard {step}".encode()})
    filesystem = pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))
    metrics = {"step": step, **({"val_dice": dice} if dice is not None else {})}
    callback.after_report(None, [metrics, {"step": step}], Checkpoint(folder, filesystem))


def _best_files(run: str, options: dict) -> dict[str, bytes]:
    fs, root = fsspec.core.url_to_fs(run, **options)
    return {path[len(root) + 1:]: fs.cat_file(path) for path in fs.find(f"{root}/best")}


def test_only_the_best_checkpoint_is_copied_whole_and_survives_a_resumed_run(run_folder):
    run, options = run_folder
    assert kept_best(run, options) is None
    callback = KeepBest("val_dice")
    for step, dice in [(1, 0.5), (2, 0.7), (3, None), (4, 0.6)]:
        _report(callback, run, options, step, dice)
    folder, metrics = kept_best(run, options)
    assert (folder, metrics) == (f"{run}/best/checkpoint_000002", {"step": 2, "val_dice": 0.7})
    files = _best_files(run, options)
    assert files["best/checkpoint_000002/weights.pt"] == b"weights 2"
    assert files["best/checkpoint_000002/shard/rank_1.pt"] == b"shard 2"
    assert {path.split("/")[1] for path in files} == {"checkpoint_000002"}
    assert sorted(path.split("/")[-1] for path in files if "shard" not in path) == [
        "best.json", "weights.pt"]  # the marker was renamed into place

    resumed = KeepBest("val_dice")  # a rerun compares against the stored best
    _report(resumed, run, options, 5, 0.65)
    assert kept_best(run, options)[0] == f"{run}/best/checkpoint_000002"
    _report(resumed, run, options, 6, 0.9)
    assert kept_best(run, options) == (f"{run}/best/checkpoint_000006",
                                       {"step": 6, "val_dice": 0.9})
    assert {path.split("/")[1] for path in _best_files(run, options)} == {"checkpoint_000006"}


def test_a_copy_without_its_marker_does_not_count(run_folder):
    """A controller killed mid-copy leaves a copy without ``best.json``: ignored, and replaced."""
    run, options = run_folder
    fs, root = fsspec.core.url_to_fs(run, **options)
    _report(KeepBest("val_dice"), run, options, 1, 0.5)
    for step in (2, 3):
        fs.makedirs(f"{root}/best/checkpoint_{step:06d}", exist_ok=True)
        fs.pipe(f"{root}/best/checkpoint_{step:06d}/weights.pt", b"half")
    fs.pipe(f"{root}/best/checkpoint_000003/.best.json.tmp", b'{"best_by": "val_di')  # killed
    assert kept_best(run, options)[0] == f"{run}/best/checkpoint_000001"
    _report(KeepBest("val_dice"), run, options, 2, 0.8)
    files = _best_files(run, options)
    assert files["best/checkpoint_000002/weights.pt"] == b"weights 2"
    assert {path.split("/")[1] for path in files} == {"checkpoint_000002"}
    assert kept_best(run, options)[1]["val_dice"] == 0.8
