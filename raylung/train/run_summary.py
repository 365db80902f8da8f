"""What every training run folder ends with: ``curves.png`` and ``summary.json``.

The summary names the config (a hash of the resolved tree), the checkpoint a user should take
(the kept copy of the best by the trainer's metric, else the last), its metrics and the wall
time of the run.
"""

from __future__ import annotations

import hashlib
import json
from numbers import Real
from typing import Any

import ray.train

from raylung.config import Config
from raylung.io.write import write_bytes
from raylung.plots import curves_png
from raylung.train.keep_best import checkpoint_url, kept_best
from raylung.train.metrics_log import METRICS_TABLE, read_metrics_table

# Where a run's files go and how it logs: the same experiment hashes alike on every machine.
PRIVATE_SECTIONS = ("storage", "logging")


def write_run_summary(config: Config, run_folder: str, result: ray.train.Result,
                      seconds: float, best: str | None = None) -> dict[str, Any]:
    """Write ``summary.json`` and ``curves.png`` into the run folder; returns the summary."""
    options = config.storage.storage_options
    kept = kept_best(run_folder, options) if best else None
    folder, chosen = kept or (checkpoint_url(run_folder, result.checkpoint), result.metrics)
    summary = {
        "run": config.run.name,
        "config_hash": config_hash(config),
        "final_step": result.metrics.get("step"),
        "best_by": best if kept else "last checkpoint",
        "best_step": chosen.get("step"),
        "best_checkpoint": folder,
        "best_metrics": {k: v for k, v in chosen.items()
                         if isinstance(v, Real) and not isinstance(v, bool)},
        "wall_time_s": round(seconds, 1),
    }
    write_bytes(f"{run_folder}/summary.json", json.dumps(summary, indent=2).encode(), options)
    table = read_metrics_table(f"{run_folder}/{METRICS_TABLE}", options)
    write_bytes(f"{run_folder}/curves.png", curves_png(table), options)
    return summary


def config_hash(config: Config) -> str:
    """12 hex digits naming the resolved config (the same settings give the same hash);
    the sections that may hold secrets are left out."""
    text = json.dumps(config.model_dump(mode="json", exclude=set(PRIVATE_SECTIONS)),
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
