"""The method's payoff on phantoms: does GAN augmentation help segment pathological lungs?

    .venv/bin/python benchmarks/augmentation_ablation.py                 # 3 seeds, ~25 min on 2 CPUs
    .venv/bin/python benchmarks/augmentation_ablation.py --seeds 1 --steps 40   # a quick look

Trains the demo-scale CycleGAN once, then the demo-scale U-Net on labelled healthy phantoms
only, with the same budget (steps, model, seed) for: (a) no augmentation, (b) classical
augmentation, (c) classical + shape-aware GAN augmentation (p_synth = 0.5). Each U-Net's best
checkpoint (by pathological val Dice) is scored on the whole pathological *test* phantoms in
their native grid: Dice, HD95, rim Dice and lesion inclusion, mean and sd over seeds. The cost of the GAN stage is the step rate and the
data-wait fraction of (b) against (c). Prints two tables and writes
benchmarks/results/augmentation_ablation.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from raylung.cli import demo_overrides
from raylung.config import Config, load_config
from raylung.ingest.run import ingest
from raylung.phantom import write_phantoms
from raylung.train.runner import fit_gan
from raylung.train.seg_report import report_test_split
from raylung.train.seg_runner import best_checkpoint, fit_seg

RESULTS = Path(__file__).parent / "results"
VARIANTS = {"(a) none": ["data.augment.enabled=false", "seg.p_synth=0"],
            "(b) classical": ["seg.p_synth=0"],
            "(c) classical + GAN": ["seg.p_synth=0.5"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=160, help="U-Net steps per run")
    parser.add_argument("--gan-steps", type=int, default=300)
    parser.add_argument("--workdir", default="/tmp/raylung-bench-ablation")
    args = parser.parse_args()
    work = Path(args.workdir)
    base = _base(work, args)
    _prepare_data(work, base)
    generator = _train_gan(base)
    rows = [_run(base, generator, name, overrides, seed, work)
            for seed in range(args.seeds) for name, overrides in VARIANTS.items()]
    _print(pd.DataFrame(rows))


def _base(work: Path, args: argparse.Namespace) -> list[str]:
    return [*demo_overrides(work), "phantom.cases=16", "data.split_fractions=[0.5,0.25,0.25]",
            f"gan.steps={args.gan_steps}", f"gan.decay_start={args.gan_steps // 2}",
            f"gan.checkpoint_every={args.gan_steps}", f"seg.steps={args.steps}",
            f"seg.decay_start={args.steps // 2}", f"seg.log_every={args.steps}"]


def _prepare_data(work: Path, base: list[str]) -> None:
    config = load_config(None, base)
    if not (work / "phantoms" / "cases.csv").exists():
        write_phantoms(work / "phantoms", config.phantom)
    assert ingest(str(work / "phantoms"), str(work / "store"), config, progress=False).ok


def _train_gan(base: list[str]) -> str:
    result = fit_gan(load_config(None, [*base, "run.name=ablation_gan"]))
    return f"{result.checkpoint.path}/generator_h2p.pt"


def _run(base: list[str], generator: str, name: str, overrides: list[str], seed: int,
         work: Path) -> dict:
    tag = f"{name[1]}_{seed}"
    config = load_config(None, [*base, f"seg.generator={generator}", *overrides,
                                f"seg.seed={seed}", f"data.seed={seed}",
                                f"run.name=ablation_seg_{tag}"])
    result = fit_seg(config)
    checkpoint, _ = best_checkpoint(result)
    scores = _test_scores(config, Path(checkpoint.path), work / f"test_{tag}")
    return {"variant": name, "seed": seed, **scores,
            "steps_per_s": result.metrics["steps_per_s"],
            "data_wait_fraction": result.metrics["data_wait_fraction"]}


def _test_scores(config: Config, checkpoint: Path, folder: Path) -> dict[str, float]:
    """Dice, HD95, rim Dice and lesion inclusion of a checkpoint's segmenter on the whole
    pathological test scans in their native grid (train-seg's test report)."""
    per_case = report_test_split(config, checkpoint / "segmenter.pt", folder, progress=False)
    sick = per_case[(per_case["domain"] == "pathological") & (per_case["label"] == "lung")]
    return {"dice": sick["dice"].mean(), "hd95_mm": sick["hd95_mm"].mean(),
            "rim_dice": sick["rim_dice"].mean(),
            "lesion_inclusion": sick["lesion_included_voxels"].sum()
            / sick["lesion_voxels"].sum()}


def _print(table: pd.DataFrame) -> None:
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "augmentation_ablation.csv", index=False)
    quality = table.groupby("variant", sort=False)[
        ["dice", "hd95_mm", "rim_dice", "lesion_inclusion"]].agg(["mean", "std"])
    print("pathological test phantoms, whole scans in their native grid (mean, sd over seeds)")
    print(quality.round(4).to_string())
    cost = table.groupby("variant", sort=False)[["steps_per_s", "data_wait_fraction"]].mean()
    print("\ncost of the GAN stage (last logging interval of each run)")
    print(cost.round(3).to_string())


if __name__ == "__main__":
    main()
