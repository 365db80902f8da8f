"""``raylung demo``: phantoms -> store -> stream -> CycleGAN -> G on a whole healthy scan ->
U-Net with GAN augmentation -> the test report, at a scale of a few minutes on 2 CPU cores,
with a closing summary."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from raylung.cli.data import ingest_cases, print_info, stream_samples, write_phantom_cases
from raylung.cli.jobs import add_job, job_config
from raylung.cli.train import print_test_report, train_gan, train_seg_run
from raylung.config import save_config
from raylung.io.write import write_atomic


def add_demo(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` job and its flags."""
    job = add_job(sub, "demo", _run_demo, "end-to-end demo on built-in synthetic data")
    job.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")


def demo_overrides(out: Path) -> list[str]:
    """The demo's scale: a few minutes on 2 CPU cores (user overrides win). The GAN has the
    README's CPU-scale settings and steps enough for G to draw its first opacities."""
    return [f"data.store={out / 'store'}", "data.slice_size=[64,64]", "data.batch_size=8",
            "data.samples_per_epoch=64", "data.reader_cpus=0.5", "data.read_concurrency=1",
            "gan.width=16", "gan.n_blocks=3", "gan.disc_width=64", "gan.lambda_id=1",
            "gan.steps=240", "gan.decay_start=240", "gan.log_every=40",
            "gan.checkpoint_every=80", "gan.val_samples=4", "run.name=demo_gan",
            f"run.storage_path={out / 'runs'}", "run.keep_checkpoints=2",  # and the best's copy
            "seg.channels=[8,16,32]", "seg.strides=[2,2]", "seg.num_res_units=1",
            "seg.steps=80", "seg.decay_start=40", "seg.log_every=16",
            f"seg.generator={out / 'generator_h2p.pt'}", "seg.p_synth=0.5",
            "seg.synth_cpus=0.5"]


def _run_demo(args: argparse.Namespace) -> int:
    config = job_config(args, *demo_overrides(args.out))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "raylung_config.yaml")
    timer = _Stages(8)
    with timer("phantoms", f"-> {out / 'phantoms'}"):
        write_phantom_cases(out / "phantoms", config)
    with timer("ingest", f"-> {out / 'store'}"):
        if ingest_cases(str(out / "phantoms"), str(out / "store"), config):
            return 1
    with timer("store summary"):
        print_info(str(out / "store"), config)
    with timer("Ray Data stream", "of training slices"):
        stream_samples(config, "train", 8, out)
    with timer("shape-aware CycleGAN", f"({config.gan.steps} steps) -> {out / 'runs'}"):
        gan = Path(train_gan(config))
    _copy_atomic(gan / "generator_h2p.pt", Path(config.seg.generator))
    with timer("synth: G on a whole healthy scan", f"-> {out / 'synth'}"):
        _synth_scan(out, Path(config.seg.generator))
    seg_config = config.model_copy(deep=True)
    seg_config.run.name = "demo_seg"
    with timer("U-Net with GAN augmentation", f"(p_synth={config.seg.p_synth}, "
               f"{config.seg.steps} steps) -> {out / 'runs'}"):
        seg = train_seg_run(seg_config)
    with timer("test split: segment + evaluate", "(whole scans, native grid)"):
        tested = print_test_report(seg_config, seg[0])
    from raylung.train.runner import run_folder
    _demo_summary(out, timer, (gan, Path(run_folder(seg_config))), seg, tested)
    return 0


def _synth_scan(out: Path, generator: Path) -> None:
    """G on the first healthy phantom, whole: ``out/synth/<case>.nii.gz`` and ``synth.png``."""
    import SimpleITK as sitk

    from raylung.plots import save_scan_synthesis
    from raylung.segment.batch import Options
    from raylung.segment.inputs import Job
    from raylung.synth.batch import synth_one

    cases = pd.read_csv(out / "phantoms" / "cases.csv")
    healthy = cases[cases["domain"] == "healthy"]
    if healthy.empty:
        print("synth: no healthy phantom to draw disease into")
        return
    case = healthy.iloc[0]
    job = Job(case.case_id, str(out / "phantoms" / case.image),
              str(out / "synth" / f"{case.case_id}.nii.gz"))
    scans = [sitk.DICOMOrient(scan, "LPS")
             for scan in synth_one(job, str(generator), Options(), seed=0)]
    save_scan_synthesis(*(sitk.GetArrayFromImage(scan) for scan in scans),
                        scans[0].GetSpacing(), out / "synth.png")
    print(f"synth: {job.image} -> {job.output}")


class _Stages:
    """Numbered stage headers, ``[2/8] ingest ...``, and each stage's wall time."""

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
                "gan_validation.png": gan / "validation.png", "synth.png": out / "synth.png",
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
    write_atomic(target, lambda tmp: shutil.copyfile(source, tmp))
