"""The jobs that apply trained models and score masks: ``segment``, ``synth`` and ``evaluate``."""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from raylung.cli.jobs import add_job, job_config, one_line_warnings

if TYPE_CHECKING:
    from raylung.config import Config
    from raylung.segment.batch import Options


def _scans_job(sub: argparse._SubParsersAction, name: str, run, help_text: str,
               model: str, out: str) -> argparse.ArgumentParser:
    """A job that applies a model to scans: INPUT, ``--model``, ``--out``, device and batch."""
    job = add_job(sub, name, run, help_text,
                  ("input", {"help": "image file, DICOM file or series folder, a folder of "
                                     "scans, or a CSV/parquet table with an 'image' column"}))
    job.add_argument("--model", required=True, help=model)
    job.add_argument("--out", required=True, type=Path,
                     help=f"{out} file for one scan, else a folder (one <name>.nii.gz per scan)")
    job.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    job.add_argument("--batch-size", type=_number(int, 1), default=8,
                     help="slices (2-D) or patches (3-D) per forward pass")
    job.add_argument("--actors", type=_number(int, 1), default=1,
                     help="model replicas of a batch job")
    job.add_argument("--actor-cpus", type=_number(float, 0.01), default=1.0,
                     help="CPUs per model replica")
    job.add_argument("--actor-gpus", type=_number(float, 0.0), default=0.0,
                     help="GPU fraction per model replica (clusters)")
    return job


def _number(cast: type, low: float):
    """An argparse type: a ``cast`` number of at least ``low``."""
    def parse(text: str):
        value = cast(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text}: must be at least {low}")
        return value
    parse.__name__ = cast.__name__  # argparse's "invalid int value: 'x'"
    return parse


def _apply_to_scans(args: argparse.Namespace, one, batch, **extra) -> int:
    """One scan in this process (``one(job, options=...)``), a batch as one Ray Data job
    (``batch(jobs, options=...)`` returns the failures); ``extra`` adds to the options. Prints
    the closing line, returns the status."""
    from raylung.runtime import connect
    from raylung.segment.inputs import plan_jobs

    config = job_config(args)  # a batch's cluster, a model URL's storage options
    options = _options(args, config, **extra)
    jobs, is_batch = plan_jobs(args.input, args.out)
    start = time.perf_counter()
    if not is_batch:
        one(jobs[0], options=options)
        print(f"{args.command}: {jobs[0].image} -> {jobs[0].output} "
              f"({time.perf_counter() - start:.1f} s)")
        return 0
    connect(config.ray)
    failures = batch(jobs, options=options)
    print(f"{args.command}: {len(jobs) - len(failures)} of {len(jobs)} scans -> {args.out} "
          f"({time.perf_counter() - start:.0f} s)")
    return 1 if failures else 0


def _options(args: argparse.Namespace, config: Config, **extra) -> Options:
    """How the scans' model runs: device, batch, its actors in a batch job, and the storage
    options of a model given as a URL (``storage.storage_options``)."""
    from raylung.models.placement import check_device
    from raylung.segment.batch import Options

    return Options(check_device(args.device), args.batch_size, actors=args.actors,
                   actor_cpus=args.actor_cpus, actor_gpus=args.actor_gpus,
                   storage_options=config.storage.storage_options, **extra)


def add_segment(sub: argparse._SubParsersAction) -> None:
    """The ``segment`` job and its flags."""
    job = _scans_job(sub, "segment", _run_segment, "segment the lungs of CT scans with a "
                     "trained segmenter; masks on each scan's exact grid (1 = lung)",
                     "segmenter.pt of a train-seg checkpoint", "mask")
    job.add_argument("--sides", action="store_true", help="1 = right lung, 2 = left lung")
    job.add_argument("--no-postprocess", action="store_true",
                     help="keep every predicted voxel (no component filter, no hole filling)")
    job.add_argument("--probabilities", action="store_true",
                     help="also write <name>_probability.nii.gz (float32 lung probability)")


def _run_segment(args: argparse.Namespace) -> int:
    from raylung.segment.batch import segment_batch, segment_one

    return _apply_to_scans(args, partial(segment_one, model=args.model),
                           partial(segment_batch, model=args.model),
                           postprocess=not args.no_postprocess, sides=args.sides,
                           probabilities=args.probabilities)


def add_synth(sub: argparse._SubParsersAction) -> None:
    """The ``synth`` job and its flags."""
    job = _scans_job(sub, "synth", _run_synth, "draw a trained G's disease into healthy CT "
                     "scans (int16 HU on each scan's own grid; its healthy lung mask still "
                     "fits)", "generator_h2p.pt of a train-gan checkpoint", "scan")
    job.add_argument("--seed", type=int, default=0,
                     help="where G draws its lesions: with the scan's name, seeds its noise")


def _run_synth(args: argparse.Namespace) -> int:
    from raylung.synth.batch import synth_batch, synth_one

    return _apply_to_scans(args, partial(synth_one, model=args.model, seed=args.seed),
                           partial(synth_batch, model=args.model, seed=args.seed))


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` job and its flags."""
    job = add_job(sub, "evaluate", _run_evaluate, "score predicted masks against reference masks "
                  "on whole volumes: Dice, IoU, HD95, ASSD, surface Dice, rim Dice, volumes",
                  config=False)
    job.add_argument("--pred", required=True, type=Path, help="predicted mask file or folder")
    job.add_argument("--ref", required=True, type=Path,
                     help="reference mask file or folder (cases matched by name)")
    job.add_argument("--out", required=True, type=Path,
                     help="folder for per_case.csv, summary.csv and report.png")
    job.add_argument("--lesions", type=Path,
                     help="folder of lesion masks: adds the lesion inclusion rate")
    job.add_argument("--images", type=Path,
                     help="the CT scans (file or folder, matched by name): drawn under the "
                          "worst cases' contours in report.png")
    job.add_argument("--rim-mm", type=float, default=3.0,
                     help="half-width of the band around the reference border (rim Dice)")
    job.add_argument("--tolerance-mm", type=float, default=2.0,
                     help="tolerance of the normalised surface Dice")


def _run_evaluate(args: argparse.Namespace) -> int:
    from raylung.evaluate.folders import evaluate_cases, files_by_case, match_cases
    from raylung.evaluate.report import format_summary

    with one_line_warnings("evaluate"):
        cases = match_cases(args.pred, args.ref, args.lesions)
        images = (None if args.images is None else {cases[0][0]: args.images}
                  if args.images.is_file() else files_by_case(args.images))
        _, summary = evaluate_cases(cases, args.out, args.rim_mm, args.tolerance_mm, images)
    print(format_summary(summary))
    print(f"evaluate: {len(cases)} cases -> {args.out / 'per_case.csv'}, "
          f"{args.out / 'summary.csv'}, {args.out / 'report.png'}")
    return 0
