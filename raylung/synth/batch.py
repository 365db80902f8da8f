"""``raylung synth``: one scan in this process, many scans as one Ray Data job with the stages
of ``raylung segment`` (readers, an actor pool of G, writers; raylung/segment/batch.py).

A scan that fails becomes one line ``raylung synth: FILE: problem``; the others still finish.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import SimpleITK as sitk

from raylung.io.read import read_volume
from raylung.io.write import write_image
from raylung.networks import export_config
from raylung.segment.batch import Options, run_batch
from raylung.segment.inputs import Job
from raylung.synth.scan import Synthesiser, add_change, scan_seed


def synth_one(job: Job, model: str, options: Options,
              seed: int) -> tuple[sitk.Image, sitk.Image]:
    """Draw G's disease into one scan in this process (no Ray); the scan and what was
    written."""
    synthesise = Synthesiser(model, options.device, options.batch_size, options.storage_options)
    image = read_volume(job.image, largest_series=True)
    diseased = synthesise(image, scan_seed(seed, job.name), job.image)
    write_image(diseased, job.output)
    return image, diseased


def synth_batch(jobs: list[Job], model: str, options: Options, seed: int,
                progress: bool = True) -> list[tuple[Job, str]]:
    """Draw G's disease into every job's scan in a Ray Data job; returns the (job, problem)
    of each failed scan."""
    # readers prepare scans with G's own settings
    config = export_config(model, "generator_h2p", options.storage_options)
    return run_batch("synth", jobs, config, (_changer, model, options, seed), _write_synthetic,
                     options, progress)


def _changer(model: str, options: Options, seed: int) -> Callable[[dict[str, Any]], Any]:
    """G's change of a row's scan (canonical grid, HU), from a G loaded once."""
    synthesise = Synthesiser(model, options.device, options.batch_size, options.storage_options)
    return lambda row: synthesise.change(row["scan"], scan_seed(seed, row["name"]), row["image"])


def _write_synthetic(row: dict[str, Any]) -> None:
    """The scan plus G's change, on the scan's grid, written atomically (the scan is read
    again: the reader kept only its canonical copy)."""
    image = read_volume(row["image"], largest_series=True)
    write_image(add_change(image, row["prediction"], row["scan"]), row["output"])
