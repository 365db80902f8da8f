"""How long ``raylung segment`` takes per clinical-size scan, and what the batch path adds.

    .venv/bin/python benchmarks/segment.py                # 3 scans of 512x512x300, ~10 min on 2 CPUs
    .venv/bin/python benchmarks/segment.py --scans 2 --slices 150   # a quicker look

Writes pathological phantoms of 512 x 512 x ``--slices`` voxels and exports the default
segmenters (``seg.*`` defaults: a 4-level residual U-Net; 2-D on 256 x 256 slices, 3-D on
64^3 patches with 50 % overlap and Gaussian blending). Their weights are untrained: the time of
a forward pass does not depend on them, and their noisy masks make post-processing no cheaper
than a trained model's. Table 1: seconds per scan in this process by stage (read, canonical grid
and thorax box, prediction, back to the scan's grid with post-processing, write). Table 2: the
Ray Data batch path over all scans with 1 and 2 model actors, as scans/s and as a ratio
against the in-process loop of table 1. Writes benchmarks/results/segment*.csv.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch
from measure import Laps, clinical_run

from raylung.config import load_config
from raylung.io.read import read_volume
from raylung.io.write import write_image
from raylung.networks import build_segmenter, export_model
from raylung.runtime import connect
from raylung.segment.batch import Options, segment_batch
from raylung.segment.inputs import plan_jobs
from raylung.segment.segmenter import Segmenter, finish

RESULTS = Path(__file__).parent / "results"
MODES = {"2-D": ["data.mode=slice2d"], "3-D": ["data.mode=patch3d"]}


def main() -> None:
    args, scans = clinical_run(__doc__.split("\n\n")[0], scans=3)
    stages, batches = [], []
    for mode, overrides in MODES.items():
        model = export_segmenter(args.workdir / f"segmenter_{mode}.pt", overrides)
        stages += [{"mode": mode, "scan": s.name, **timed_stages(model, s, args.workdir)}
                   for s in scans]
        loop = sum(row["total_s"] for row in stages if row["mode"] == mode)
        batches += [_batch(model, mode, scans, args.workdir, actors, loop) for actors in (1, 2)]
    _print(pd.DataFrame(stages), pd.DataFrame(batches))


def export_segmenter(path: Path, overrides: list[str]) -> Path:
    """The default segmenter of ``overrides``, untrained (seeded), exported to ``path``."""
    config = load_config(None, overrides)
    torch.manual_seed(0)
    return export_model(build_segmenter(config), config, path, "segmenter")


def timed_stages(model: Path, scan: Path, work: Path) -> dict[str, float]:
    """Seconds of each stage of segmenting ``scan`` in this process, and their total."""
    segmenter, lap = Segmenter(model), Laps()
    image = read_volume(scan)
    lap("read")
    prepared = segmenter.prepare(image)
    lap("prepare")
    prob = segmenter.predict(prepared)
    lap("predict")
    result = finish(prob, prepared)
    lap("to_native")
    write_image(result.mask, work / "masks_loop" / scan.name)
    lap("write")
    return lap.table()


def _batch(model: Path, mode: str, scans: list[Path], work: Path, actors: int,
           loop_s: float) -> dict[str, object]:
    connect(load_config(None, ["ray.num_cpus=2"]).ray)
    table = work / "batch_scans.csv"  # exactly this run's scans: the folder keeps earlier ones
    pd.DataFrame({"image": [str(s) for s in scans]}).to_csv(table, index=False)
    jobs, _ = plan_jobs(table, work / f"masks_{mode}_{actors}")
    start = time.perf_counter()
    failures = segment_batch(jobs, str(model), Options(actors=actors), progress=False)
    seconds = time.perf_counter() - start
    return {"mode": mode, "actors": actors, "scans": len(jobs) - len(failures),
            "seconds": round(seconds, 1), "scans_per_s": round(len(jobs) / seconds, 3),
            "vs_loop": round(loop_s / seconds, 2)}


def _print(stages: pd.DataFrame, batches: pd.DataFrame) -> None:
    RESULTS.mkdir(exist_ok=True)
    stages.to_csv(RESULTS / "segment_stages.csv", index=False)
    batches.to_csv(RESULTS / "segment_batch.csv", index=False)
    print("seconds per 512 x 512 scan, in this process (no Ray)")
    print(stages.to_string(index=False))
    print("\nmean total:", stages.groupby("mode")["total_s"].mean().round(1).to_dict())
    print("\nbatch path (Ray Data: readers -> model actors -> writers), all scans;"
          " vs_loop = in-process loop time / batch time")
    print(batches.to_string(index=False))


if __name__ == "__main__":
    main()
