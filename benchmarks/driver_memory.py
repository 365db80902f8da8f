"""Driver memory and start time of a training stream against its number of epochs.

    .venv/bin/python benchmarks/driver_memory.py                       # 1, 200, 1000 epochs
    .venv/bin/python benchmarks/driver_memory.py --epochs 1 50 --samples 2000

Builds the pipeline's dataset (raylung/data/pipeline.py) over 8 phantoms for each epoch count,
takes its first batch and stops it: seconds to build, seconds to the first batch, and the
driver's RSS after it, with ratios against the 1-epoch baseline run first in the same process.
Prints a table and writes benchmarks/results/driver_memory.csv.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import ray

from measure import phantom_store

from raylung.config import load_config
from raylung.data.pipeline import build_dataset

RESULTS = Path(__file__).parent / "results"


def measure(config, epochs: int) -> dict:
    """Build a stream of ``epochs`` epochs, take its first batch, stop it."""
    start = time.perf_counter()
    dataset = build_dataset(config, "train", range(epochs))
    built = time.perf_counter()
    batches = iter(dataset.iter_batches(batch_size=config.data.batch_size))
    next(batches)
    first = time.perf_counter()
    batches.close()
    gc.collect()
    return {"epochs": epochs, "samples": epochs * config.data.samples_per_epoch,
            "build_s": built - start, "first_batch_s": first - built,
            "driver_rss_mib": psutil.Process().memory_info().rss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--samples", type=int, default=10_000, help="samples per epoch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        store = phantom_store(Path(work), load_config(None, [
            "phantom.cases=8", "phantom.size=128", "phantom.slices=[24,32]"]))
        config = load_config(None, [f"data.store={store}", "data.slice_size=[64,64]",
                                    f"data.samples_per_epoch={args.samples}",
                                    "data.reader_cpus=0.5"])
        measure(config, 1)  # imports and Ray Data's first plan
        rows = [measure(config, e) for e in [1, *args.epochs]]
        ray.shutdown()
    table = pd.DataFrame(rows)
    base = table.iloc[0]
    table["rss_over_1_epoch_mib"] = table["driver_rss_mib"] - base["driver_rss_mib"]
    table["first_batch_x"] = table["first_batch_s"] / base["first_batch_s"]
    print(table.round(2).to_string(index=False))
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "driver_memory.csv", index=False)


if __name__ == "__main__":
    main()
