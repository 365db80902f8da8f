"""The training jobs: ``train-gan``, ``train-seg`` (with its test report) and ``tune``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from raylung.cli.jobs import add_job, job_config, one_line_warnings
from raylung.config import Config, ConfigError

if TYPE_CHECKING:
    import pandas as pd


LAPTOP = (". Needs data.store; the defaults are the GPU scale (256 x 256 slices): on a laptop "
          "add --config experiments/cpu_scale.yaml --config cluster/laptop.yaml")


def add_train_gan(sub: argparse._SubParsersAction) -> None:
    """The ``train-gan`` job and its flags."""
    add_job(sub, "train-gan", _run_train_gan, "train the shape-aware CycleGAN with Ray Train and "
            "DeepSpeed (rerun the same run.name to resume)", more=LAPTOP,
            example="data.store=store run.name=gan gan.steps=1000")


def _run_train_gan(args: argparse.Namespace) -> int:
    train_gan(job_config(args))
    return 0


def train_gan(config: Config) -> str:
    """Train the GAN and print where its export is; the checkpoint folder (a path or URL). A
    failed run raises (Ray Train's ``fit``), and ``cli.main`` makes that one line."""
    from raylung.train.progress import scores_text
    from raylung.train.runner import checkpoint_folder, fit_gan

    result = fit_gan(config)
    folder = checkpoint_folder(config, result.checkpoint)
    print(f"train-gan: step {result.metrics.get('step')} -> generator {folder}/generator_h2p.pt")
    scores = scores_text(result.metrics)
    if scores:
        print(f"train-gan: validation  {scores}  (grid {folder}/validation.png)")
    return folder


def add_train_seg(sub: argparse._SubParsersAction) -> None:
    """The ``train-seg`` job and its flags."""
    add_job(sub, "train-seg", _run_train_seg, "train the U-Net segmenter with Ray Train and "
            "DeepSpeed, with on-the-fly GAN augmentation (seg.generator, seg.p_synth)",
            more=LAPTOP, example="data.store=store run.name=seg seg.generator=G.pt")


def _run_train_seg(args: argparse.Namespace) -> int:
    return _train_seg(job_config(args))


def _train_seg(config: Config) -> int:
    print_test_report(config, train_seg_run(config)[0])
    return 0


def print_test_report(config: Config, checkpoint: str) -> pd.DataFrame | None:
    """Segment and score the untouched test split with the best checkpoint; print the table
    (written to the run folder's ``test/``)."""
    from raylung.evaluate.report import format_summary, summarise_scores
    from raylung.train.runner import run_folder
    from raylung.train.seg_report import report_test_split

    out = f"{run_folder(config)}/test"
    with one_line_warnings("train-seg"):
        per_case = report_test_split(config, f"{checkpoint}/segmenter.pt", out)
    if per_case is None:
        print(f"train-seg: no labelled test case in {config.data.store}: no test report")
        return None
    print(f"train-seg: test split, {per_case['case'].nunique()} whole scans in their native "
          f"grid -> {out}")
    # one table per domain, the diseased scans (where the method is judged) first
    for domain in sorted(per_case["domain"].unique(), key=lambda d: d != "pathological"):
        cases = per_case[per_case["domain"] == domain]
        scans = cases["case"].nunique()
        print(f"{domain} ({scans} scan{'s' * (scans != 1)}):")
        print(format_summary(summarise_scores(cases)))
    return per_case


def train_seg_run(config: Config) -> tuple[str, dict]:
    """Train the segmenter and print its best checkpoint; that folder (path or URL) and its
    metrics. A failed run raises, as in ``train_gan``."""
    from raylung.train.progress import scores_text
    from raylung.train.seg_runner import best_checkpoint, fit_seg

    result = fit_seg(config)
    folder, metrics = best_checkpoint(config, result)
    print(f"train-seg: best step {metrics.get('step')} -> segmenter {folder}/segmenter.pt")
    scores = scores_text(metrics)
    if scores:
        print(f"train-seg: validation  {scores}")
    return folder, metrics


def add_tune(sub: argparse._SubParsersAction) -> None:
    """The ``tune`` job and its flags."""
    job = add_job(sub, "tune", _run_tune, "search loss weights (any config field) with Ray Tune: "
                  "every trial a Ray Train run, weak ones stopped early (tune_spaces/*.yaml)")
    where = job.add_mutually_exclusive_group(required=True)
    where.add_argument("--space", type=Path, help="sweep file: space: plus base config "
                       "sections, over --config if given")
    where.add_argument("--resume", type=Path, metavar="DIR",
                       help="continue the sweep in DIR without rerunning finished trials")


def _run_tune(args: argparse.Namespace) -> int:
    from raylung.tune.space import load_sweep, read_sweep
    from raylung.tune.sweep import run_sweep

    if args.verbose:
        args.overrides.append("ray.verbose=true")
    if args.resume is None:
        sweep = load_sweep(args.space, args.config, args.overrides)
    elif args.config or any(not item.startswith("ray.") for item in args.overrides):
        raise ConfigError(f"--resume takes only ray.* overrides: the sweep is fixed in "
                          f"{args.resume}/sweep.yaml")
    else:
        sweep = read_sweep(args.resume, args.overrides)
    table = run_sweep(sweep, resume=args.resume is not None)
    return 0 if table["objective"].notna().any() else 1
