"""How long short U-Net runs wait on Ray Train's report poll: Ray's default against raylung's.

    .venv/bin/python benchmarks/report_poll.py                # ~5 min on 2 CPUs
    .venv/bin/python benchmarks/report_poll.py --steps 48 --repeats 3

Ray Train's controller takes at most one report per worker per poll, and a worker blocks in
``ray.train.report`` until its previous report was taken. raylung polls every
``raylung.runtime.REPORT_POLL_S`` s unless ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` is set; Ray's
default is 2 s. Each row is real ``fit_seg`` runs of a tiny U-Net on 4 phantoms (1 worker,
32^2 slices), reporting every step or once at the end, in one Ray cluster, the two intervals
alternating. Prints a table (mean wall per run, ratio against Ray's default at the same
reporting) and writes benchmarks/results/report_poll.csv.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import pandas as pd

from raylung.config import load_config
from raylung.runtime import POLL_ENV, REPORT_POLL_S, connect
from raylung.train.seg_runner import fit_seg

from measure import phantom_store

RESULTS = Path(__file__).parent / "results"
RAY_DEFAULT_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raylung-report-poll"))
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    base = ["phantom.cases=4", "phantom.size=96", "phantom.slices=[16,20]", "ray.num_cpus=2",
            f"data.store={args.workdir / 'store'}", "data.split_fractions=[0.5,0.5,0]"]
    config = load_config(None, base)
    shutil.rmtree(args.workdir / "runs", ignore_errors=True)  # a rerun must not resume
    connect(config.ray)
    phantom_store(args.workdir, config)
    rows = [_run(base, args, log_every, interval, repeat)
            for repeat in range(args.repeats) for log_every in (1, args.steps)
            for interval in (RAY_DEFAULT_S, REPORT_POLL_S)]
    table = _summary(pd.DataFrame(rows))
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "report_poll.csv", index=False)
    print(f"U-Net runs of {args.steps} steps, 1 worker, {args.repeats} runs per row\n"
          f"{table.to_string(index=False)}")


def _run(base: list[str], args: argparse.Namespace, log_every: int, interval: float,
         repeat: int) -> dict:
    """One ``fit_seg`` run with the controller polling every ``interval`` s."""
    os.environ[POLL_ENV] = str(interval)
    config = load_config(None, [
        *base, "data.slice_size=[32,32]", "data.batch_size=2", "data.samples_per_epoch=4",
        "data.reader_cpus=0.25", "data.read_concurrency=1", "seg.channels=[4,8]",
        "seg.strides=[2]", "seg.num_res_units=1", f"seg.steps={args.steps}",
        f"seg.decay_start={args.steps // 2}", f"seg.log_every={log_every}", "seg.val_cases=0",
        "scaling.cpus_per_worker=0.5", f"run.storage_path={args.workdir / 'runs'}",
        f"run.name=poll{interval}_every{log_every}_{repeat}"])
    start = time.perf_counter()
    result = fit_seg(config, progress=False)
    assert result.error is None, result.error
    return {"reports": args.steps // log_every, "poll_s": interval,
            "wall_s": time.perf_counter() - start}


def _summary(runs: pd.DataFrame) -> pd.DataFrame:
    table = runs.groupby(["reports", "poll_s"], as_index=False)["wall_s"].agg(["mean", "std"])
    table = table.rename(columns={"mean": "wall_s", "std": "wall_sd"})
    default = table[table["poll_s"] == RAY_DEFAULT_S].set_index("reports")["wall_s"]
    table["ratio"] = table["wall_s"] / table["reports"].map(default)
    return table.round(2)


if __name__ == "__main__":
    main()
