"""The jobs that apply trained models and score masks: ``segment``, ``synth`` and ``evaluate``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from raylung.cli.jobs import add_job, job_config, one_line_warnings
from raylung.errors import InputError


def _scans_job(sub: argparse._SubParsersAction, name: str, run, help_text: str,
               model: str, out: str) -> argparse.ArgumentParser:
    """A job that applies a model to scans: INPUT, ``--model``, ``--out``, device and batch."""
    job = add_job(sub, name, run, help_text,
                  ("input", {"help": "image file, DICOM file or series folder, a folder of "
                                     "scans, or a CSV/parquet table with an 'image' column"}))
    job.add_argument("--model", required=True, help=model)
    job.add_argument("--out", required=True, type=Path,
                     help=f"{out} file for one scan, else a folder (one <name>.nii.gz per scan)")
    job.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    job.add_argument("--batch-size", type=int, default=8,
                     help="slices (2-D) or patches (3-D) per forward pass")
    return job


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
    job.add_argument("--actors", type=int, default=1, help="model replicas of a batch job")
    job.add_argument("--actor-cpus", type=float, default=1.0, help="CPUs per model replica")
    job.add_argument("--actor-gpus", type=float, default=0.0,
                     help="GPU fraction per model replica (clusters)")


def _run_segment(args: argparse.Namespace) -> int:
    from raylung.segment.batch import Options, segment_batch, segment_one
    from raylung.segment.inputs import plan_jobs

    options = Options(args.device, args.batch_size, not args.no_postprocess, args.sides,
                      args.probabilities, args.actors, args.actor_cpus, args.actor_gpus)
    jobs, batch = plan_jobs(args.input, args.out)
    start = time.perf_counter()
    if not batch:
        segment_one(jobs[0], args.model, options)
        print(f"segment: {jobs[0].image} -> {jobs[0].output} "
              f"({time.perf_counter() - start:.1f} s)")
        return 0
    from raylung.runtime import connect

    connect(job_config(args).ray)
    failures = segment_batch(jobs, args.model, options)
    print(f"segment: {len(jobs) - len(failures)} of {len(jobs)} scans -> {args.out} "
          f"({time.perf_counter() - start:.0f} s)")
    return 1 if failures else 0


def add_synth(sub: argparse._SubParsersAction) -> None:
    """The ``synth`` job and its flags."""
    job = _scans_job(sub, "synth", _run_synth, "draw a trained G's disease into healthy CT "
                     "scans (int16 HU on each scan's own grid; its healthy lung mask still "
                     "fits)", "generator_h2p.pt of a train-gan checkpoint", "scan")
    job.add_argument("--seed", type=int, default=0,
                     help="where G draws its lesions: with the scan's name, seeds its noise")


def _run_synth(args: argparse.Namespace) -> int:
    from raylung.io.read import read_volume
    from raylung.io.write import write_image
    from raylung.seeds import text_seed
    from raylung.segment.inputs import plan_jobs
    from raylung.synth.scan import Synthesiser

    jobs, _ = plan_jobs(args.input, args.out)
    synthesise = Synthesiser(args.model, args.device, args.batch_size)
    start, failed = time.perf_counter(), 0
    for job in tqdm(jobs, desc="synth", unit="scan", disable=len(jobs) == 1, file=sys.stderr):
        try:
            image = read_volume(job.image, largest_series=True)
            seed = text_seed(f"{args.seed}:{job.name}")
            write_image(synthesise(image, seed, job.image), job.output)
        except InputError as err:  # one bad scan must not stop the others
            tqdm.write(f"raylung synth: {err}", file=sys.stderr)
            failed += 1
    print(f"synth: {len(jobs) - failed} of {len(jobs)} scans -> {args.out} "
          f"({time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` job and its flags."""
    job = add_job(sub, "evaluate", _run_evaluate, "score predicted masks against reference masks "
                  "on whole volumes: Dice, IoU, HD95, ASSD, surface Dice, rim Dice, volumes")
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
