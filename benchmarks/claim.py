"""The method's claim on phantoms, end to end: G draws disease, the surround term keeps the
wall, and a U-Net trained with G's images keeps the diseased rim (README, "Tests and benchmarks";
benchmarks/MEASUREMENTS.md).

    .venv/bin/python benchmarks/claim.py              # the whole claim, ~45 min on 2 CPU cores
    .venv/bin/python benchmarks/claim.py --quick      # every arm and seed, short runs, ~15 min
    .venv/bin/python benchmarks/claim.py --gpu        # a GPU machine: 256 x 256, scaling.use_gpu

GAN arms, same seed, steps and data, both with G's noise field and the diversity term
(``NOISE``): ``gan.lambda_surround=0`` against the default. Each is scored by its exported G,
the average of the trained one (``gan.ema_decay``), at every checkpoint of the last third of
training (one every 1/15 of the run), on ``SCORE_SAMPLES`` val slices of each domain with the
validation's own scores (raylung/train/gan_validation.py), averaged: translation (how far
G(h)'s lung goes towards the real disease), disease share, surround L1, change outside the
body, the wall's Dice, the rule-based shape Dice and the opacity overlap (how alike G's
lesions are from slice to slice); and by the sd of translation over those checkpoints.

U-Net arms, same steps, data and model, ``--seeds`` seeds each: (a) no augmentation,
(b) classical, (c) classical + the default arm's G (``seg.p_synth``), (d) classical + oracle,
where each chosen healthy sample is read from its phantom twin: the phantom's own opacities in
the same thorax, under the same lung mask, i.e. what a perfect G would give. Each U-Net's best
checkpoint (pathological val Dice) segments the untouched pathological test phantoms whole, in
their native grid (train-seg's test report, of that domain only): Dice, rim Dice, lesion
inclusion, HD95. The split is fixed over seeds.

Arms train ``--parallel`` at a time (2 on CPU: each trainer runs on one thread), with the same
results as one after the other. On a GPU (default 1) the arms at once split it, each 1/N of
it, and a row is reused only by a rerun with the same ``--parallel``. Writes
``OUT/claim_gan.csv``, ``OUT/claim_seg.csv`` (a row per arm and seed) and ``OUT/claim.png``,
and prints both tables and the targets. A rerun reuses finished arms.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import ray.train
from measure import phantom_store

from raylung.config import Config, load_config
from raylung.data.splits import store_splits
from raylung.io.write import write_bytes
from raylung.networks import load_generator
from raylung.plots import plt, save_figure
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest
from raylung.train.gan_validation import GanValidator
from raylung.train.runner import fit_gan
from raylung.train.seg_report import report_test_split
from raylung.train.seg_runner import best_checkpoint, fit_seg

RESULTS = Path(__file__).parent / "results" / "claim"
# cases, GAN steps, U-Net steps, slice side; the GAN settings are the README's CPU scale.
SCALES = {"full": (48, 1500, 1200, 64), "quick": (16, 400, 60, 64), "gpu": (48, 6000, 2000, 256)}
# G reads a noise field and is paid to vary its lesions with it (MEASUREMENTS.md, "Varied
# lesions").
NOISE = ["gan.noise_channels=1", "gan.lambda_diversity=0.3"]
GAN_ARMS = {"surround 0": ["gan.lambda_surround=0", *NOISE], "default": NOISE}
# val slices of each domain that every late checkpoint's G is scored on
SCORE_SAMPLES = 128
P_SYNTH = 0.5  # the demo's share of translated samples, and the oracle's
# A U-Net validates whole val scans at each data epoch: about 20 per run, at least 15 steps
# apart (each validation is a checkpoint, which costs a short run more than its steps).
SEG_VALIDATIONS, SEG_MIN_EPOCH = 20, 15
SEG_ARMS = {"(a) none": ["data.augment.enabled=false"],
            "(b) classical": [],
            "(c) classical + GAN": ["seg.generator={generator}", f"seg.p_synth={P_SYNTH}"],
            "(d) classical + oracle": [f"data.twin_p={P_SYNTH}"]}
GAN_COLUMNS = ["val_translation", "val_disease_share", "val_disease_share_pathological",
               "val_surround_l1_hu", "val_change_outside_body_hu", "val_wall_dice",
               "val_shape_dice", "val_realism_hu", "val_opacity_overlap",
               "val_opacity_overlap_pathological"]
SEG_COLUMNS = ["dice", "rim_dice", "lesion_inclusion", "hd95_mm"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="short runs (~15 min on 2 CPUs)")
    scale.add_argument("--gpu", action="store_true", help="256 x 256 on a GPU machine")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=None,
                        help="arms trained at once (default: 2; 1 with --gpu, where the arms at "
                        "once share the GPU)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raylung-claim"))
    parser.add_argument("overrides", nargs="*", help="config overrides for every run")
    args = parser.parse_args()
    name = "quick" if args.quick else "gpu" if args.gpu else "full"
    work = args.workdir / name
    parallel = args.parallel if args.parallel is not None else 1 if args.gpu else 2
    if parallel < 1:
        parser.error("--parallel must be at least 1")
    base = _base(work, *SCALES[name], parallel if args.gpu else 0) + args.overrides
    start = time.perf_counter()
    _prepare_data(work, base)
    gan = pd.DataFrame(_at_once(parallel, [partial(_gan_arm, base, arm, overrides, work)
                                           for arm, overrides in GAN_ARMS.items()]))
    generator = gan.set_index("arm").loc["default", "generator"]
    seg = pd.DataFrame(_at_once(parallel, [
        partial(_seg_arm, base, generator, arm, overrides, seed, work)
        for seed in range(args.seeds) for arm, overrides in SEG_ARMS.items()]))
    _report(gan, seg, base, args.out, time.perf_counter() - start)


def _at_once(parallel: int, arms: list[Callable[[], dict]]) -> list[dict]:
    """Each arm's row, in order, with ``parallel`` arms training at once (an arm's trainer
    runs on one thread, so one arm leaves a core idle). An arm that exits stops the claim:
    no further arm starts, and those running finish (their rows are kept)."""
    failed = threading.Event()

    def run(arm: Callable[[], dict]) -> dict | None:
        if failed.is_set():
            return None
        try:
            return arm()
        except BaseException:
            failed.set()
            raise
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(run, arms))


def _base(work: Path, cases: int, gan_steps: int, seg_steps: int, size: int,
          gpu_arms: int) -> list[str]:
    """Overrides every run shares: the phantom store, the scale, CPU or GPU resources.
    An arm reserves one of Ray's CPUs (its trainer, one thread, and light readers and G
    actor), so two train at once on 2 cores; on a GPU (``gpu_arms`` > 0) it reserves its
    share of the one GPU, so that ``gpu_arms`` arms train on it at once."""
    return [f"phantom.cases={cases}", "phantom.twins=true", f"data.store={work / 'store'}",
            f"data.splits_file={work / 'splits.csv'}", "data.split_fractions=[0.5,0.25,0.25]",
            f"data.slice_size=[{size},{size}]", "data.batch_size=8", "data.samples_per_epoch=64",
            "scaling.cpus_per_worker=0.5", "data.reader_cpus=0.25", "data.read_concurrency=1",
            "gan.width=16", "gan.n_blocks=3", "gan.disc_width=64", "gan.lambda_id=1",
            f"gan.steps={gan_steps}", f"gan.decay_start={gan_steps}",
            f"gan.checkpoint_every={max(gan_steps // 15, 1)}", "gan.log_every=50",
            "gan.val_samples=16", "seg.channels=[8,16,32]", "seg.strides=[2,2]",
            "seg.num_res_units=1", f"seg.steps={seg_steps}", f"seg.decay_start={seg_steps // 2}",
            f"seg.log_every={max(seg_steps // 4, 1)}", "seg.synth_cpus=0.25",
            f"run.storage_path={work / 'runs'}", "logging.tensorboard=false",
            *_gpu_shares(gpu_arms)]


def _gpu_shares(arms: int) -> list[str]:
    """An arm's share of the GPU, 3/4 for its trainer and 1/4 for its G actor, split over
    ``arms`` arms at once (none: CPU only)."""
    if not arms:
        return []
    return ["scaling.use_gpu=true", f"scaling.gpus_per_worker={0.75 / arms:g}",
            f"seg.synth_gpus={0.25 / arms:g}"]


def _prepare_data(work: Path, base: list[str]) -> None:
    """Phantoms with twins, their store, and one split for every arm and seed."""
    config = load_config(None, [*base, "data.splits_file=null"])
    print(f"claim: {config.phantom.cases} phantoms with twins -> {work / 'store'}", flush=True)
    phantom_store(work, config)
    store = CaseStore(config.data.store)
    splits = store_splits(store, read_manifest(store), config.data)
    _write_atomic(work / "splits.csv", splits.rename("split").rename_axis("case_id")
                  .reset_index().to_csv(index=False))


def _gan_arm(base: list[str], arm: str, overrides: list[str], work: Path) -> dict:
    """Train one CycleGAN arm (or reuse its finished row) and score its late checkpoints."""
    settings = [*base, *overrides]

    def run() -> dict:
        config = load_config(None, [*settings, f"run.name=claim_gan_{_slug(arm)}"])
        result = fit_gan(config)
        if result.error:
            sys.exit(f"claim: GAN arm {arm!r} failed: {result.error}")
        return gan_row(arm, config, result)
    key = [*settings, f"scored on {SCORE_SAMPLES} slices"]  # an older row was scored apart
    return _cached(work / "rows" / f"gan_{_slug(arm)}.json", key, run)


def gan_row(arm: str, config: Config, result: ray.train.Result) -> dict:
    """An arm's scores: each the mean over the checkpoints of the last third of training,
    whose exported G is scored on ``SCORE_SAMPLES`` val slices of each domain (one validation's
    few slices swing too much to compare arms), and the sd of translation over them: how
    steady the exported G is."""
    scoring = config.model_copy(deep=True)
    scoring.gan.val_samples = scoring.gan.val_pathological = SCORE_SAMPLES
    validator = GanValidator(scoring)
    late = [c.path for c, m in result.best_checkpoints if m["step"] > config.gan.steps * 2 / 3]
    scores = pd.DataFrame([validator(load_generator(f"{path}/generator_h2p.pt")[0])
                           for path in late])
    return {"arm": arm, "lambda_surround": config.gan.lambda_surround,
            **scores.reindex(columns=GAN_COLUMNS).mean(), "checkpoints": len(late),
            "val_translation_sd": scores["val_translation"].std(),
            "generator": f"{result.checkpoint.path}/generator_h2p.pt"}


def _seg_arm(base: list[str], generator: str, arm: str, overrides: list[str], seed: int,
             work: Path) -> dict:
    """Train one U-Net arm and seed (or reuse its row); score it on the test phantoms."""
    tag = f"{_slug(arm)}_{seed}"
    settings = [*base, *(o.format(generator=generator) for o in overrides), f"seg.seed={seed}",
                f"data.seed={seed}"]
    settings.append(f"data.samples_per_epoch={_seg_epoch(load_config(None, settings))}")

    def run() -> dict:
        config = load_config(None, [*settings, f"run.name=claim_seg_{tag}"])
        result = fit_seg(config)
        if result.error:
            sys.exit(f"claim: U-Net arm {arm!r} seed {seed} failed: {result.error}")
        checkpoint, _ = best_checkpoint(config, result)
        scores = _test_scores(config, checkpoint, work / "test" / tag)
        return {"arm": arm, "seed": seed, **scores,
                "steps_per_s": result.metrics["steps_per_s"]}
    return _cached(work / "rows" / f"seg_{tag}.json", settings, run)


def _seg_epoch(config: Config) -> int:
    """Samples per U-Net data epoch: ``SEG_VALIDATIONS`` validations a run, at least
    ``SEG_MIN_EPOCH`` steps apart. An override, so that it is part of the row's cache key."""
    return config.data.batch_size * max(config.seg.steps // SEG_VALIDATIONS, SEG_MIN_EPOCH)


def _test_scores(config: Config, checkpoint: str, folder: Path) -> dict[str, float]:
    """The pathological test phantoms, whole scans in their native grid (train-seg's report)."""
    per_case = report_test_split(config, f"{checkpoint}/segmenter.pt", str(folder),
                                 progress=False, domain="pathological")
    sick = per_case[per_case["label"] == "lung"]
    return {"dice": sick["dice"].mean(), "rim_dice": sick["rim_dice"].mean(),
            "lesion_inclusion": sick["lesion_included_voxels"].sum()
            / sick["lesion_voxels"].sum(), "hd95_mm": sick["hd95_mm"].mean()}


def _report(gan: pd.DataFrame, seg: pd.DataFrame, base: list[str], out: Path,
            seconds: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "claim_gan.csv", gan.to_csv(index=False))
    _write_atomic(out / "claim_seg.csv", seg.to_csv(index=False))
    print(f"GAN arms (means over the late checkpoints' G, each on {SCORE_SAMPLES} healthy val "
          "slices against as many real pathological ones)")
    print(gan.drop(columns="generator").set_index("arm").round(4).T.to_string())
    summary = seg.groupby("arm", sort=False)[SEG_COLUMNS].agg(["mean", "std"])
    print(f"\nU-Net arms, {seg['seed'].nunique()} seeds: pathological test phantoms, whole "
          "scans in their native grid (mean, sd over seeds)")
    print(summary.round(4).to_string())
    gains = paired_gains(seg)
    print("\ngain over (a) within each seed (same data order and initialisation; mean, sd)")
    print(gains.round(4).to_string())
    print("\ntargets")
    for line in _targets(gan.set_index("arm"), gains):
        print(f"  {line}")
    _figure(gan, seg, base, out / "claim.png")
    print(f"\nclaim: {seconds / 60:.0f} min -> {out / 'claim_gan.csv'}, "
          f"{out / 'claim_seg.csv'}, {out / 'claim.png'}")


def paired_gains(seg: pd.DataFrame) -> pd.DataFrame:
    """Each arm's scores minus arm (a)'s of the same seed, as mean and sd over seeds: the seeds
    move all arms together, so the paired difference is the sharper measure."""
    scores = seg.set_index(["arm", "seed"])[SEG_COLUMNS]
    diff = scores - scores.xs("(a) none", level="arm")
    diff = diff.drop(index="(a) none", level="arm")
    return diff.groupby(level="arm", sort=False).agg(["mean", "std"])


def _targets(gan: pd.DataFrame, gains: pd.DataFrame) -> list[str]:
    """Each of the issue's targets with its measured value."""
    g0, g1 = gan.loc["surround 0"], gan.loc["default"]
    band = g0["val_surround_l1_hu"] / g1["val_surround_l1_hu"]
    kept = (g1["val_translation"] / g0["val_translation"] if g0["val_translation"] > 0
            else float("nan"))
    mean = gains.xs("mean", axis=1, level=1)
    rim = mean.loc["(c) classical + GAN", "rim_dice"]
    lesion = 100 * mean.loc["(c) classical + GAN", "lesion_inclusion"]
    oracle = 100 * mean.loc["(d) classical + oracle", "lesion_inclusion"]
    checks = [
        (f"translation of G(h) {g1['val_translation']:.2f} >= 0.5", g1["val_translation"] >= 0.5),
        (f"wall Dice {g1['val_wall_dice']:.3f} >= 0.95", g1["val_wall_dice"] >= 0.95),
        (f"surround term cuts the band's change {band:.1f}x >= 2x", band >= 2),
        (f"... at {kept:.0%} of the surround-0 translation (>= 80 %)", kept >= 0.8),
        (f"(c) - (a) rim Dice {rim:+.3f} >= +0.03", rim >= 0.03),
        (f"(c) - (a) lesion inclusion {lesion:+.1f} points >= +6", lesion >= 6),
        (f"(d) - (a) lesion inclusion {oracle:+.1f} points (the ceiling) > 0", oracle > 0),
    ]
    return [f"{'met    ' if ok else 'NOT MET'} {text}" for text, ok in checks]


def _figure(gan: pd.DataFrame, seg: pd.DataFrame, base: list[str], path: Path) -> None:
    """h, G(h) and |G(h) - h| of each GAN arm on 3 val slices; the U-Net arms' test scores."""
    validator = GanValidator(load_config(None, [*base, "gan.val_samples=3"]))
    h = validator.healthy["image"][:, :1]
    columns = {"h": h}
    for row in gan.itertuples():
        generator, _ = load_generator(row.generator)
        gh = validator.translate(generator)[1].numpy()[:, :1]
        columns[f"G(h), {row.arm}"] = gh
        columns[f"|G(h) - h|, {row.arm}"] = np.abs(gh - h)
    fig = plt.figure(figsize=(2.4 * len(columns), 2.4 * len(h) + 3.2))
    grid = fig.add_gridspec(len(h) + 1, len(columns), height_ratios=[1] * len(h) + [1.4])
    for i in range(len(h)):
        for j, (name, images) in enumerate(columns.items()):
            ax = fig.add_subplot(grid[i, j])
            diff = name.startswith("|")
            ax.imshow(images[i, 0], cmap="magma" if diff else "gray", vmin=0 if diff else -1,
                      vmax=1)
            ax.axis("off")
            if i == 0:
                ax.set_title(name, fontsize=8)
    half = len(columns) // 2
    for k, (metric, cols) in enumerate((("rim_dice", slice(0, half)),
                                         ("lesion_inclusion", slice(half, len(columns))))):
        ax = fig.add_subplot(grid[len(h), cols])
        arms = list(seg["arm"].unique())
        for x, arm in enumerate(arms):
            values = seg.loc[seg["arm"] == arm, metric]
            ax.scatter(np.full(len(values), x), values, s=14, color="tab:blue")
            ax.hlines(values.mean(), x - 0.3, x + 0.3, color="k")
        ax.set_xticks(range(len(arms)), [a.split(") ")[0] + ")" for a in arms])
        ax.set_title(f"test {metric.replace('_', ' ')}", fontsize=9)
    save_figure(fig, path)


def _cached(path: Path, settings: list[str], run: Callable[[], dict]) -> dict:
    """The row in ``path`` if an earlier run with the same ``settings`` (overrides) finished
    it, else ``run()``'s row, saved; a row of other settings stops the claim in one line (its
    training runs would be resumed, not started again)."""
    if path.exists():
        row = json.loads(path.read_text())
        if row.pop("settings", None) != settings:
            sys.exit(f"claim: {path} holds a row of other settings; pass another --workdir")
        return row
    print(f"claim: {path.stem} ...", flush=True)
    start = time.perf_counter()
    row = run()
    print(f"claim: {path.stem} done in {time.perf_counter() - start:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps({**row, "settings": settings}, default=float))
    return row


def _write_atomic(path: Path, text: str) -> None:
    write_bytes(str(path), text.encode())


def _slug(arm: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in arm).strip("_")


if __name__ == "__main__":
    main()
