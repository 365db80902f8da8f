"""How steady the exported G is: the trained G against its average (``gan.ema_decay``) at
every checkpoint of one ``raylung train-gan`` run, scored by the run's own validation.

    .venv/bin/python benchmarks/generator_average.py RUN_FOLDER

RUN_FOLDER is a local run folder (``<run.storage_path>/<run.name>``) whose checkpoints were all
kept (``run.keep_checkpoints`` at least their number). Prints translation, surround L1 (HU), the
wall's Dice and realism (HU) of both generators per checkpoint, then their mean and sd over the
last third of the checkpoints, and writes ``benchmarks/results/generator_average.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from raylung.config import load_config
from raylung.networks import build_generator, load_generator
from raylung.train.checkpoint import engine_weights
from raylung.train.gan_validation import GanValidator

RESULTS = Path(__file__).parent / "results"
SCORES = ["val_translation", "val_surround_l1_hu", "val_wall_dice", "val_realism_hu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a train-gan run folder")
    args = parser.parse_args()
    checkpoints = sorted(p for p in args.run.glob("checkpoint_*") if p.is_dir())
    if not checkpoints:
        raise SystemExit(f"{args.run}: no checkpoint folder in this run folder")
    validator = GanValidator(load_config(checkpoints[-1] / "raylung_config.yaml"))
    rows = []
    for folder in checkpoints:
        step = torch.load(folder / "state_rank0.pt", map_location="cpu", weights_only=True)["step"]
        for name, generator in generators(folder).items():
            scores = validator(generator)
            rows.append({"step": step, "G": name, **{k[4:]: scores[k] for k in SCORES}})
    table = pd.DataFrame(rows)
    print(table.pivot(index="step", columns="G").round(3).to_string())
    late = table[table["step"] > table["step"].max() * 2 / 3]
    print("\nlast third of the run (mean, sd over its checkpoints)")
    print(late.drop(columns="step").groupby("G").agg(["mean", "std"]).round(3).T.to_string())
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "generator_average.csv", index=False)


def generators(folder: Path) -> dict[str, torch.nn.Module]:
    """A checkpoint's exported G (the average) and the trained G of its DeepSpeed engine."""
    exported, config = load_generator(folder / "generator_h2p.pt")
    trained = build_generator(config).eval()
    trained.load_state_dict({k.removeprefix("g."): v.float()
                             for k, v in engine_weights(folder, "generators").items()
                             if k.startswith("g.")})
    return {"average (exported)": exported, "trained": trained}


if __name__ == "__main__":
    main()
