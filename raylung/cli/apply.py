"""The jobs that apply trained models and score masks: ``segment``, ``synth`` and ``evaluate``."""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from raylung.cli.jobs import add_job, job_config, number, one_line_warnings

if TYPE_CHECKING:
    from raylung.config import Config
    from raylung.segment.batch import Options


SCAN_JOB_SECTIONS = ("ray.", "storage.")  # what segment and synth read of the config


def _scans_job(sub: argparse._SubParsersAction, name: str, run, help_text: str,
               model: str, out: str) -> argparse.ArgumentParser:
    """A job that applies a model to scans: INPUT, ``--model``, ``--out``, device and batch."""
    job = add_job(sub, name, run, help_text,
                  ("input", {"help": "image file, DICOM file or series folder, a folder of "
                                     "scans or of case folders (<case>/image.nii.gz), or a "
                                     "CSV/parquet table with an 'image' column"}),
                  example="ray.address=auto",
                  reads=" (only ray.* and storage.* apply: the model file holds the rest)")
    job.add_argument("--model", required=True, help=model)
    job.add_argument("--out", required=True, type=Path,
                     help=f"{out} file for one scan, else a folder (one <name>.nii.gz per scan)")
    job.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    job.add_argument("--batch-size", type=number(int, 1), default=8,
                     help="slices (2-D) or patches (3-D) per forward pass")
    job.add_argument("--actors", type=number(int, 1), default=1,
                     help="model replicas of a batch job")
    job.add_argument("--actor-cpus", type=number(float, 0.01), default=1.0,
                     help="CPUs per model replica")
    job.add_argument("--actor-gpus", type=number(float, 0.0), default=0.0,
                     help="GPU fraction per model replica (clusters)")
    return job


def _apply_to_scans(args: argparse.Namespace, one, batch, outputs, **extra) -> int:
    """One scan in this process (``one(job, options=...)``), a batch as one Ray Data job
    (``batch(jobs, options=...)`` returns the failures) of the scans a rerun has left
    (``outputs(job)``: the files a job writes); ``extra`` adds to the options. Prints the
    closing line, returns the status."""
    from raylung.networks import export_digest
    from raylung.runtime import connect
    from raylung.segment.inputs import pending, plan_jobs

    ignored = [item for item in args.overrides
               if not item.split("=")[0].startswith(SCAN_JOB_SECTIONS)]
    if ignored:
        raise ValueError(f"{ignored[0]}: {args.command} takes the model's settings from the model "
                         f"file; only {' and '.join(s + '*' for s in SCAN_JOB_SECTIONS)} "
                         "overrides apply")
    config = job_config(args)  # a batch's cluster, a model URL's storage options
    options = _options(args, config, **extra)
    with one_line_warnings(args.command):
        jobs, is_batch = plan_jobs(args.input, args.out)
    start = time.perf_counter()
    if not is_batch:
        one(jobs[0], options=options)
        print(f"{args.command}: {jobs[0].image} -> {jobs[0].output} "
              f"({time.perf_counter() - start:.1f} s)")
        return 0
    record = {"command": args.command, "seed": getattr(args, "seed", None), **extra,
              "model_sha256": export_digest(args.model, options.storage_options)}
    todo = pending(jobs, args.out, record, outputs)
    if len(todo) < len(jobs):
        print(f"{args.command}: {len(jobs) - len(todo)} of {len(jobs)} scans already in "
              f"{args.out} from this model and these settings; running the other {len(todo)}")
    failures = []
    if todo:
        connect(config.ray)
        failures = batch(todo, options=options)
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
                           lambda job: [job.output, job.probability],
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
                           partial(synth_batch, model=args.model, seed=args.seed),
                           lambda job: [job.output])


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` job and its flags."""
    job = add_job(sub, "evaluate", _run_evaluate, "score predicted masks against reference masks "
                  "on whole volumes: Dice, IoU, HD95, ASSD, surface Dice, rim Dice, volumes",
                  config=False)
    job.add_argument("--pred", required=True, type=Path, help="predicted mask file or folder")
    job.add_argument("--ref", required=True, type=Path,
                     help="reference mask file or folder (cases matched by name; a case "
                          "folder's lung.<suffix>, as ingest reads them)")
    job.add_argument("--out", required=True, type=Path,
                     help="folder for per_case.csv, summary.csv and report.png")
    job.add_argument("--lesions", type=Path,
                     help="folder of lesion masks (or case folders' lesion.<suffix>): adds the "
                          "lesion inclusion rate")
    job.add_argument("--images", type=Path,
                     help="the CT scans (file or folder, matched by name): drawn under the "
                          "worst cases' contours in report.png")
    job.add_argument("--rim-mm", type=number(float, 0, strict=True), default=3.0,
                     help="half-width of the band around the reference border (rim Dice)")
    job.add_argument("--tolerance-mm", type=number(float, 0, strict=True), default=2.0,
                     help="tolerance of the normalised surface Dice")


def _run_evaluate(args: argparse.Namespace) -> int:
    from raylung.evaluate.folders import evaluate_cases, match_cases
    from raylung.evaluate.report import format_summary

    with one_line_warnings("evaluate"):
        cases = match_cases(args.pred, args.ref, args.lesions)
        images = _report_images(args.images, cases)
        _, summary = evaluate_cases(cases, args.out, args.rim_mm, args.tolerance_mm, images)
    print(format_summary(summary))
    print(f"evaluate: {len(cases)} cases -> {args.out / 'per_case.csv'}, "
          f"{args.out / 'summary.csv'}, {args.out / 'report.png'}")
    return 0


def _report_images(images: Path | None, cases: list) -> dict[str, Path] | None:
    """The CT of each case for report.png, from ``--images``: one file for one case, or a
    folder matched by name (names that match no case are warned about)."""
    from raylung.errors import InputError
    from raylung.evaluate.folders import files_by_case, warn_unmatched

    if images is None:
        return None
    if images.is_file():
        if len(cases) > 1:
            raise InputError(images, f"--images is one file but there are {len(cases)} cases: "
                                     "give a folder of scans named as the masks")
        return {cases[0][0]: images}
    found = files_by_case(images, "image")
    warn_unmatched("scan(s)", images, found, {case[0]: case[2] for case in cases})
    return found
