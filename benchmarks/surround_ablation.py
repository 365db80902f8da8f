"""The method's own claim on phantoms: the surrounding-L1 term keeps the lung's surroundings.

    .venv/bin/python benchmarks/surround_ablation.py               # 2 x 300 steps, ~15 min on 2 CPUs
    .venv/bin/python benchmarks/surround_ablation.py --steps 60    # a quick look
    .venv/bin/python benchmarks/surround_ablation.py --steps 600 scaling.cpus_per_worker=2 ray.num_cpus=3

Trains the demo-scale CycleGAN twice, identical but for ``gan.lambda_surround`` (0 and the
default), and compares the validation scores of the last checkpoint: change in the surround
band and inside the lungs (HU), and the shape-preservation Dice. Prints a table and writes
benchmarks/results/surround_ablation.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from raylung.cli import demo_overrides
from raylung.config import load_config
from raylung.ingest.run import ingest
from raylung.phantom import write_phantoms
from raylung.train.runner import fit_gan

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workdir", default="/tmp/raylung-bench-surround")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides for both runs")
    args = parser.parse_args()
    work = Path(args.workdir)
    default = load_config().gan.lambda_surround
    rows = []
    for weight in (0.0, default):
        config = load_config(None, [
            *demo_overrides(work), "phantom.cases=12", "data.split_fractions=[0.6,0.4,0]",
            f"gan.steps={args.steps}", f"gan.decay_start={args.steps // 2}",
            f"gan.checkpoint_every={args.steps}", "gan.val_samples=16",
            f"gan.lambda_surround={weight}", f"run.name=surround_{weight:g}", *args.overrides])
        if not (work / "phantoms" / "cases.csv").exists():
            write_phantoms(work / "phantoms", config.phantom)
        assert ingest(str(work / "phantoms"), str(work / "store"), config, progress=False).ok
        result = fit_gan(config)
        rows.append({"lambda_surround": weight, **{k.removeprefix("val_"): round(v, 3)
                                                   for k, v in result.metrics.items()
                                                   if k.startswith("val_")},
                     "grid": f"{result.checkpoint.path}/validation.png"})
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "surround_ablation.csv", index=False)
    print(table.drop(columns="grid").to_string(index=False))
    off, on = rows
    print(f"surround change cut {off['surround_l1_hu'] / on['surround_l1_hu']:.1f}x by the term; "
          f"lung change {on['change_in_lung_hu']:.0f} HU with it, "
          f"{off['change_in_lung_hu']:.0f} HU without")


if __name__ == "__main__":
    main()
