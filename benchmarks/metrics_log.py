"""What the run loggers cost a long run on object storage: writing ``metrics.csv`` and
uploading the whole TensorBoard file at every report, against raylung's default (at
checkpoints, after a failure, and at most every ``SYNC_EVERY_S`` s between; a new event file
every ``EVENT_FILE_BYTES``).

    .venv/bin/python benchmarks/metrics_log.py            # ~3.5 min on 2 CPUs
    .venv/bin/python benchmarks/metrics_log.py --reports 1000 2000

Each row feeds the two loggers of one run (``MetricsTable``, ``TensorBoardLogger``) the
reports of a GAN run (20 scalars each, a checkpoint every ``--checkpoint-every`` reports),
as fast as they take them, into an in-memory fsspec store that stands for S3: wall time in
the loggers, writes and bytes written. Writing at every report into one event file (what
raylung did before) costs time and bytes quadratic in the number of reports. Reports come
faster here than in a run, so the default writes only at checkpoints; in a run add one write
per ``SYNC_EVERY_S`` s. Prints a table and writes benchmarks/results/metrics_log.csv.
"""

from __future__ import annotations

import argparse
import math
import time
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
from ray.train import UserCallback

from raylung.train.metrics_log import (EVENT_FILE_BYTES, SYNC_EVERY_S, MetricsTable,
                                      TensorBoardLogger)

RESULTS = Path(__file__).parent / "results"
SCALARS = [f"loss_{i}" for i in range(16)] + ["lr", "steps_per_s", "data_wait_fraction",
                                               "val_translation"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--checkpoint-every", type=int, default=50)
    args = parser.parse_args()
    rows = [_run(reports, args.checkpoint_every, every_s, file_bytes, name)
            for reports in args.reports
            for name, every_s, file_bytes in (("every report", 0.0, math.inf),
                                              ("default", SYNC_EVERY_S, EVENT_FILE_BYTES))]
    table = pd.DataFrame(rows)
    baseline = table[table["writes at"] == "every report"].set_index("reports")["logger_s"]
    table["time ratio"] = (table["logger_s"] / table["reports"].map(baseline)).round(3)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "metrics_log.csv", index=False)
    print(f"{len(SCALARS)} scalars a report, a checkpoint every {args.checkpoint_every} reports, "
          f"to an in-memory store\n{table.to_string(index=False)}")


def _run(reports: int, checkpoint_every: int, every_s: float, file_bytes: float,
         name: str) -> dict[str, Any]:
    """One run's reports through both loggers: their wall time, and the writes and bytes that
    reached the store (a write shows as a file in the store that changed size)."""
    root = f"memory://metrics-log-{uuid.uuid4().hex}"
    fs, _ = fsspec.core.url_to_fs(root)
    loggers: list[UserCallback] = [MetricsTable(f"{root}/metrics.csv", sync_every_s=every_s),
                                   TensorBoardLogger(f"{root}/tensorboard", sync_every_s=every_s,
                                                     file_bytes=file_bytes)]
    sizes: dict[str, int] = {}
    writes, written, seconds = 0, 0, 0.0
    for report in range(1, reports + 1):
        metrics = [{"step": 10 * report, **{key: 1.0 / report for key in SCALARS}}]
        checkpoint = object() if report % checkpoint_every == 0 else None
        start = time.perf_counter()
        for logger in loggers:
            logger.after_report(None, metrics, checkpoint)
        seconds += time.perf_counter() - start
        for path, size in fs.du(root, total=False).items():
            if sizes.get(path) != size:
                writes, written, sizes[path] = writes + 1, written + size, size
    return {"reports": reports, "writes at": name, "writes": writes,
            "MB written": round(written / 2**20, 1), "logger_s": round(seconds, 2)}


if __name__ == "__main__":
    main()
