"""The ``raylung`` command. Same command and config on a laptop, in a sweep, under ray job submit.

    raylung phantom data/ --cases 8                 # synthetic thorax CT (the built-in data)
    raylung ingest data/ --store store/             # CT files -> zarr store (Ray tasks)
    raylung info store/                             # what a store holds
    raylung stream store/ --mode patch3d            # the Ray Data stream alone: speed, samples
    raylung train-gan --config job.yaml             # the shape-aware CycleGAN (Ray Train)
    raylung train-seg --config job.yaml seg.generator=G.pt seg.p_synth=0.5   # U-Net + GAN aug
    raylung tune --space tune_spaces/demo.yaml      # Ray Tune search of the loss weights
    raylung segment scans/ --model segmenter.pt --out masks/     # apply a trained segmenter
    raylung evaluate --pred masks/ --ref labels/ --out report/   # Dice, HD95, surface Dice...
    raylung demo --out demo_out/                    # the end-to-end demo on phantoms

Every job takes ``--config FILE.yaml`` and ``key=value`` overrides of the config tree
(see raylung/config.py); the resolved config is written next to its outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from raylung.config import Config, ConfigError, load_config, save_config
from raylung.errors import InputError
from raylung.store.case_store import CaseStore, StoreError

RAY_LOGS = "/tmp/ray/session_latest/logs"  # Ray's own log files of the newest local session

if TYPE_CHECKING:
    import pandas as pd


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``raylung`` console script; returns the exit status."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    args.overrides = [*args.overrides, *extra]
    bad = [item for item in args.overrides if "=" not in item or item.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (overrides are key=value)")
    try:
        return args.run(args)
    except (ConfigError, InputError, StoreError, ValueError) as err:
        print(f"raylung {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"raylung {args.command}: interrupted; rerun the same command to resume",
              file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - only Ray Train's failures are turned into a line
        line = _run_failure(err)
        if line is None:
            raise
        print(f"raylung {args.command}: run failed: {line}\n  logs: the run folder's "
              f"metrics.csv and Ray's session logs ({RAY_LOGS}); rerun the same command to "
              "resume from the latest checkpoint", file=sys.stderr)
        return 1


def _run_failure(err: Exception) -> str | None:
    """The worker's (or controller's) error of a failed Ray Train run in one line; None for
    any other exception."""
    from ray.train import ControllerError, TrainingFailedError, WorkerGroupError

    if not isinstance(err, TrainingFailedError):
        return None
    cause: BaseException = err
    if isinstance(err, WorkerGroupError) and err.worker_failures:
        cause = err.worker_failures[min(err.worker_failures)]
    elif isinstance(err, ControllerError):
        cause = err.controller_failure
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[-1] if lines else type(cause).__name__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raylung", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_phantom(sub)
    _add_ingest(sub)
    _add_info(sub)
    _add_stream(sub)
    _add_train_gan(sub)
    _add_train_seg(sub)
    _add_tune(sub)
    _add_segment(sub)
    _add_evaluate(sub)
    _add_demo(sub)
    return parser


def _job(sub: argparse._SubParsersAction, name: str, run, help_text: str,
         *positionals: tuple[str, dict]) -> argparse.ArgumentParser:
    """A subcommand: its positionals, then ``--config`` and ``key=value`` overrides."""
    job = sub.add_parser(name, help=help_text, description=help_text)
    for dest, kwargs in positionals:
        job.add_argument(dest, **kwargs)
    job.add_argument("--config", type=Path, action="append",
                     help="YAML config file (sections as in raylung/config.py); repeat to layer "
                          "files, later ones win: --config exp.yaml --config cluster/gpu.yaml")
    job.add_argument("-v", "--verbose", action="store_true",
                     help="also show Ray's own INFO lines (ray.verbose=true); they are always "
                          f"in the session logs under {RAY_LOGS}")
    job.add_argument("overrides", nargs="*", metavar="key=value",
                     help="config overrides with dotted keys, e.g. ingest.spacing_mm=[1,1,2]")
    job.set_defaults(run=run)
    return job


def _config(args: argparse.Namespace, *extra: str) -> Config:
    verbose = ["ray.verbose=true"] if args.verbose else []
    return load_config(args.config, [*extra, *args.overrides, *verbose])


def _add_phantom(sub: argparse._SubParsersAction) -> None:
    job = _job(sub, "phantom", _run_phantom, "write synthetic thorax CT cases (NIfTI + cases.csv)",
               ("out_dir", {"type": Path, "help": "folder to write the cases into"}))
    job.add_argument("--cases", type=int, help="number of cases (phantom.cases)")
    job.add_argument("--pathological-fraction", type=float,
                     help="share of pathological cases (phantom.pathological_fraction)")
    job.add_argument("--seed", type=int, help="random seed (phantom.seed)")


def _run_phantom(args: argparse.Namespace) -> int:
    from raylung.phantom import write_phantoms

    flags = {"cases": args.cases, "pathological_fraction": args.pathological_fraction,
             "seed": args.seed}
    config = _config(args, *(f"phantom.{k}={v}" for k, v in flags.items() if v is not None))
    _write_phantoms(args.out_dir, config, write_phantoms)
    return 0


def _write_phantoms(out_dir: Path, config: Config, write_phantoms) -> None:
    table = write_phantoms(out_dir, config.phantom)
    save_config(config, out_dir / "raylung_config.yaml")
    counts = table["domain"].value_counts().to_dict()
    print(f"wrote {len(table)} cases to {out_dir} ({counts})")


def _add_ingest(sub: argparse._SubParsersAction) -> None:
    job = _job(sub, "ingest", _run_ingest, "read CT cases with SimpleITK into a zarr store",
               ("src", {"help": "folder of case folders (with or without cases.csv) "
                                "or a CSV/parquet table of cases"}))
    job.add_argument("--store", required=True, help="store path or fsspec URL (s3://...)")


def _run_ingest(args: argparse.Namespace) -> int:
    return _ingest(args.src, args.store, _config(args))


def _ingest(src: str, store_url: str, config: Config) -> int:
    from raylung.ingest.run import ingest

    result = ingest(src, store_url, config)
    print(f"ingest: {len(result.written)} written, {len(result.skipped)} unchanged, "
          f"{len(result.failures)} failed -> {store_url}")
    if result.failures:
        print(f"ingest: {len(result.failures)} case(s) failed; see {store_url}/ingest_report.csv",
              file=sys.stderr)
    return 0 if result.ok else 1


def _add_info(sub: argparse._SubParsersAction) -> None:
    _job(sub, "info", _run_info, "summarise a store: cases, domains, shapes, disk size",
         ("store", {"help": "store path or fsspec URL"}))


def _run_info(args: argparse.Namespace) -> int:
    _print_info(args.store, _config(args))
    return 0


def _print_info(store_url: str, config: Config) -> None:
    from raylung.store.manifest import format_summary, read_manifest

    store = CaseStore(store_url, config.storage.storage_options)
    print(format_summary(store_url, read_manifest(store)))


def _add_stream(sub: argparse._SubParsersAction) -> None:
    job = _job(sub, "stream", _run_stream, "run the Ray Data pipeline alone: throughput and "
               "a PNG grid of samples", ("store", {"help": "store path or fsspec URL"}))
    job.add_argument("--mode", choices=["slice2d", "patch3d"], help="data.mode")
    job.add_argument("--batches", type=int, default=20, help="batches to pull (default 20)")
    job.add_argument("--split", default="train", choices=["train", "val", "test"])
    job.add_argument("--out", type=Path, default=Path("stream_out"),
                     help="folder for the sample grid and the resolved config")


def _run_stream(args: argparse.Namespace) -> int:
    flags = [f"data.store={args.store}"] + ([f"data.mode={args.mode}"] if args.mode else [])
    config = _config(args, *flags)
    args.out.mkdir(parents=True, exist_ok=True)
    save_config(config, args.out / "raylung_config.yaml")
    _stream(config, args.split, args.batches, args.out)
    return 0


def _stream(config: Config, split: str, batches: int, out: Path) -> None:
    from raylung.data.stream import format_stats, stream
    from raylung.runtime import connect

    connect(config.ray)
    print(format_stats(stream(config, split, batches, out)))
    print(f"sample grid -> {out / f'stream_{config.data.mode}.png'}")


def _add_train_gan(sub: argparse._SubParsersAction) -> None:
    _job(sub, "train-gan", _run_train_gan, "train the shape-aware CycleGAN with Ray Train and "
         "DeepSpeed (rerun the same run.name to resume)")


def _run_train_gan(args: argparse.Namespace) -> int:
    return 0 if _train_gan(_config(args)) is not None else 1


def _train_gan(config: Config) -> str | None:
    """Train the GAN and print where its export is; the checkpoint folder (a path or URL),
    None on failure."""
    from raylung.train.runner import checkpoint_folder, fit_gan

    result = fit_gan(config)
    if result.error:
        print(f"raylung train-gan: error: {result.error}", file=sys.stderr)
        return None
    folder = checkpoint_folder(config, result.checkpoint)
    print(f"train-gan: step {result.metrics.get('step')} -> generator {folder}/generator_h2p.pt")
    scores = {k: round(v, 3) for k, v in result.metrics.items()
              if k.startswith("val_") and v is not None}  # a resumed run's NaN comes as None
    if scores:
        print(f"train-gan: validation {scores}; grid {folder}/validation.png")
    return folder


def _add_train_seg(sub: argparse._SubParsersAction) -> None:
    _job(sub, "train-seg", _run_train_seg, "train the U-Net segmenter with Ray Train and "
         "DeepSpeed, with on-the-fly GAN augmentation (seg.generator, seg.p_synth)")


def _run_train_seg(args: argparse.Namespace) -> int:
    return _train_seg(_config(args))


def _train_seg(config: Config) -> int:
    run = _train_seg_run(config)
    if run is None:
        return 1
    _test_report(config, run[0])
    return 0


def _test_report(config: Config, checkpoint: str) -> pd.DataFrame | None:
    """Segment and score the untouched test split with the best checkpoint; print the table
    (written to the run folder's ``test/``)."""
    from raylung.evaluate.report import format_summary, summarise_scores
    from raylung.train.runner import run_folder
    from raylung.train.seg_report import report_test_split

    out = f"{run_folder(config)}/test"
    with _one_line_warnings("train-seg"):
        per_case = report_test_split(config, f"{checkpoint}/segmenter.pt", out)
    if per_case is None:
        print(f"train-seg: no labelled test case in {config.data.store}: no test report")
        return None
    print(f"train-seg: test split, {per_case['case'].nunique()} whole scans in their native "
          f"grid -> {out}")
    print(format_summary(summarise_scores(per_case)))
    return per_case


def _train_seg_run(config: Config) -> tuple[str, dict] | None:
    """Train the segmenter and print its best checkpoint; that folder (path or URL) and its
    metrics, None on failure."""
    from raylung.train.seg_runner import best_checkpoint, fit_seg

    result = fit_seg(config)
    if result.error:
        print(f"raylung train-seg: error: {result.error}", file=sys.stderr)
        return None
    folder, metrics = best_checkpoint(config, result)
    scores = {k: round(v, 4) for k, v in metrics.items() if k.startswith("val_")}
    print(f"train-seg: best step {metrics.get('step')} {scores} -> segmenter "
          f"{folder}/segmenter.pt")
    return folder, metrics


def _add_tune(sub: argparse._SubParsersAction) -> None:
    job = _job(sub, "tune", _run_tune, "search loss weights (any config field) with Ray Tune: "
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


def _add_segment(sub: argparse._SubParsersAction) -> None:
    job = _job(sub, "segment", _run_segment, "segment the lungs of CT scans with a trained "
               "segmenter; masks on each scan's exact grid (1 = lung)",
               ("input", {"help": "image file, DICOM file or series folder, a folder of "
                                  "scans, or a CSV/parquet table with an 'image' column"}))
    job.add_argument("--model", required=True, help="segmenter.pt of a train-seg checkpoint")
    job.add_argument("--out", required=True, type=Path,
                     help="mask file for one scan, else a folder (one <name>.nii.gz per scan)")
    job.add_argument("--sides", action="store_true", help="1 = right lung, 2 = left lung")
    job.add_argument("--no-postprocess", action="store_true",
                     help="keep every predicted voxel (no component filter, no hole filling)")
    job.add_argument("--probabilities", action="store_true",
                     help="also write <name>_probability.nii.gz (float32 lung probability)")
    job.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    job.add_argument("--batch-size", type=int, default=8,
                     help="slices (2-D) or patches (3-D) per forward pass")
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
        print(f"segment: {jobs[0].image} -> {jobs[0].mask} "
              f"({time.perf_counter() - start:.1f} s)")
        return 0
    from raylung.runtime import connect

    connect(_config(args).ray)
    failures = segment_batch(jobs, args.model, options)
    print(f"segment: {len(jobs) - len(failures)} of {len(jobs)} scans -> {args.out} "
          f"({time.perf_counter() - start:.0f} s)")
    return 1 if failures else 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    job = _job(sub, "evaluate", _run_evaluate, "score predicted masks against reference masks "
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

    with _one_line_warnings("evaluate"):
        cases = match_cases(args.pred, args.ref, args.lesions)
        images = (None if args.images is None else {cases[0][0]: args.images}
                  if args.images.is_file() else files_by_case(args.images))
        _, summary = evaluate_cases(cases, args.out, args.rim_mm, args.tolerance_mm, images)
    print(format_summary(summary))
    print(f"evaluate: {len(cases)} cases -> {args.out / 'per_case.csv'}, "
          f"{args.out / 'summary.csv'}, {args.out / 'report.png'}")
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    job = _job(sub, "demo", _run_demo, "end-to-end demo on built-in synthetic data")
    job.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")


def demo_overrides(out: Path) -> list[str]:
    """The demo's scale: a few minutes on 2 CPU cores (user overrides win). The GAN has the
    README's CPU-scale settings and steps enough for G to draw its first opacities."""
    return [f"data.store={out / 'store'}", "data.slice_size=[64,64]", "data.batch_size=8",
            "data.samples_per_epoch=64", "data.reader_cpus=0.5", "data.read_concurrency=1",
            "gan.width=16", "gan.n_blocks=3", "gan.disc_width=64", "gan.lambda_id=1",
            "gan.steps=240", "gan.decay_start=240", "gan.log_every=40",
            "gan.checkpoint_every=80", "gan.val_samples=4", "run.name=demo_gan",
            f"run.storage_path={out / 'runs'}",
            "seg.channels=[8,16,32]", "seg.strides=[2,2]", "seg.num_res_units=1",
            "seg.steps=80", "seg.decay_start=40", "seg.log_every=16",
            f"seg.generator={out / 'generator_h2p.pt'}", "seg.p_synth=0.5",
            "seg.synth_cpus=0.5"]


def _run_demo(args: argparse.Namespace) -> int:
    from raylung.phantom import write_phantoms

    config = _config(args, *demo_overrides(args.out))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "raylung_config.yaml")
    timer = _Stages(7)
    with timer("phantoms", f"-> {out / 'phantoms'}"):
        _write_phantoms(out / "phantoms", config, write_phantoms)
    with timer("ingest", f"-> {out / 'store'}"):
        if _ingest(str(out / "phantoms"), str(out / "store"), config):
            return 1
    with timer("store summary"):
        _print_info(str(out / "store"), config)
    with timer("Ray Data stream", "of training slices"):
        _stream(config, "train", 8, out)
    with timer("shape-aware CycleGAN", f"({config.gan.steps} steps) -> {out / 'runs'}"):
        gan_folder = _train_gan(config)
    if gan_folder is None:
        return 1
    gan = Path(gan_folder)
    _copy_atomic(gan / "generator_h2p.pt", Path(config.seg.generator))
    seg_config = config.model_copy(deep=True)
    seg_config.run.name = "demo_seg"
    with timer("U-Net with GAN augmentation", f"(p_synth={config.seg.p_synth}, "
               f"{config.seg.steps} steps) -> {out / 'runs'}"):
        seg = _train_seg_run(seg_config)
    if seg is None:
        return 1
    with timer("test split: segment + evaluate", "(whole scans, native grid)"):
        tested = _test_report(seg_config, seg[0])
    from raylung.train.runner import run_folder
    _demo_summary(out, timer, (gan, Path(run_folder(seg_config))), seg, tested)
    return 0


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Python warnings (e.g. an empty mask) as ``raylung COMMAND: warning: ...`` lines."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_, **__: print(
            f"raylung {command}: warning: {message}", file=sys.stderr)
        yield


class _Stages:
    """Numbered stage headers, ``[2/6] ingest ...``, and each stage's wall time."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str, detail: str = "") -> Iterator[None]:
        print(f"[{len(self.seconds) + 1}/{self.total}] {name} {detail}".rstrip(), flush=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start


def _demo_summary(out: Path, timer: _Stages, runs: tuple[Path, Path], seg: tuple[str, dict],
                  tested: pd.DataFrame | None) -> None:
    """The demo's closing table: what each stage took, the scores, and the pictures;
    ``runs``: the GAN's checkpoint and the segmenter's run folder."""
    from raylung.evaluate.report import format_summary, summarise_scores

    (gan, seg_run), (folder, metrics) = runs, seg
    pictures = {"stream_slice2d.png": out / "stream_slice2d.png",
                "gan_validation.png": gan / "validation.png",
                "seg_validation.png": Path(folder, "validation.png"),
                "test_report.png": seg_run / "test" / "report.png"}
    for name, source in pictures.items():
        if source.exists() and source.parent != out:
            _copy_atomic(source, out / name)
    print(f"\nraylung demo: done in {sum(timer.seconds.values()) / 60:.1f} min")
    for stage, seconds in timer.seconds.items():
        print(f"  {stage:<36} {seconds:6.0f} s")
    scores = {k: metrics[k] for k in ("val_dice", "val_iou", "val_rim_dice") if k in metrics}
    print("  pathological val  " + ("  ".join(f"{k[4:]} {v:.3f}" for k, v in scores.items())
                                     or "not scored (no pathological val case)"))
    sick = None if tested is None else tested[tested["domain"] == "pathological"]
    if sick is None or sick.empty:
        print("  pathological test cases: none in the test split")
    else:
        print(f"  pathological test cases ({sick['case'].nunique()}), whole scans:")
        print(format_summary(summarise_scores(sick[sick["label"] == "lung"]),
                             ("dice", "hd95_mm", "rim_dice", "lesion_inclusion_pooled")))
    print("pictures:")
    for name in pictures:
        if (out / name).exists():
            print(f"  {out / name}")


def _copy_atomic(source: Path, target: Path) -> None:
    """Copy a file so that ``target`` is never half-written."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
