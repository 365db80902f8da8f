"""``raylung stream``: run the data pipeline alone, measure it, and show what the trainer sees."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from raylung.config import Config
from raylung.data.pipeline import build_dataset
from raylung.plots import save_sample_grid


@dataclass
class StreamStats:
    """Throughput of one streaming run; the first batch (actor start-up) is timed apart."""

    mode: str
    batches: int
    samples: int
    first_batch_s: float
    steady_s: float
    samples_per_s: float
    mb_per_s: float
    mean_wait_ms: float


def stream(config: Config, split: str, batches: int, out_dir: Path | None) -> StreamStats:
    """Pull ``batches`` batches from the pipeline; save a sample grid into ``out_dir``."""
    # exactly the samples asked for, so the stream ends by itself instead of being cancelled
    config = config.model_copy(deep=True)
    config.data.samples_per_epoch = batches * config.data.batch_size
    cfg = config.data
    dataset = build_dataset(config, split, [0])
    last = time.perf_counter()
    waits, sizes, first = [], [], None
    for batch in dataset.iter_batches(batch_size=cfg.batch_size, batch_format="numpy"):
        now = time.perf_counter()
        waits.append(now - last)
        sizes.append(sum(v.nbytes for v in batch.values() if v.dtype.kind != "O"))
        if first is None:
            first = batch
            if out_dir is not None:
                save_sample_grid(batch, Path(out_dir) / f"stream_{cfg.mode}.png")
        last = time.perf_counter()
    return _stats(cfg.mode, waits, sizes, cfg.batch_size)


def _stats(mode: str, waits: list[float], sizes: list[int], batch_size: int) -> StreamStats:
    steady = max(sum(waits[1:]), 1e-9)
    samples = len(waits) * batch_size
    return StreamStats(
        mode=mode, batches=len(waits), samples=samples, first_batch_s=round(waits[0], 2),
        steady_s=round(steady, 2),
        samples_per_s=round((len(waits) - 1) * batch_size / steady, 1) if len(waits) > 1 else 0.0,
        mb_per_s=round(sum(sizes[1:]) / 1e6 / steady, 1) if len(waits) > 1 else 0.0,
        mean_wait_ms=round(1000 * float(np.mean(waits[1:] or waits)), 1),
    )


def format_stats(stats: StreamStats) -> str:
    """One table row per field, for the console."""
    return "\n".join(f"{k:<16} {v}" for k, v in asdict(stats).items())
