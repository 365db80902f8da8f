"""A sweep's outputs: every trial in a table, the best config, the PNGs, a summary.

    trials.csv / trials.parquet   one row per trial, best first: trial, status (finished,
                                  stopped early by the scheduler, failed), the searched values,
                                  objective, step, validation metrics, time, error, checkpoint
    best_config.yaml              the best finished trial's config, for train-gan --config
    search.png  curves.png        raylung/tune/plots.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Result, ResultGrid

from raylung.config import Config, save_config
from raylung.errors import last_line
from raylung.io.write import write_bytes
from raylung.plots import save_figure
from raylung.tune.callback import VALIDATION
from raylung.tune.objectives import Objective
from raylung.tune.plots import curves_figure, search_figure
from raylung.tune.space import Sweep, base_values, trial_config

TOP = 5
STATUSES = ("finished", "stopped", "failed")


def write_outputs(grid: ResultGrid, sweep: Sweep, objective: Objective) -> pd.DataFrame:
    """Write the table, the best config and the PNGs into the sweep folder; print a summary."""
    folder = sweep.folder
    table = results_table(grid, sweep, objective)
    write_bytes(str(folder / "trials.csv"), table.to_csv(index=False).encode())
    write_bytes(str(folder / "trials.parquet"), table.to_parquet(index=False))
    best = best_trial(table)
    name = None if best is None else best["trial"]
    search = search_figure(table, sweep, objective, name)
    if search is not None:
        save_figure(search, folder / "search.png")
    save_figure(curves_figure({_trial(r): r.metrics_dataframe for r in grid}, table, objective,
                              name), folder / "curves.png")
    if best is not None:
        save_config(best_config(sweep, best), folder / "best_config.yaml")
    print(summary(table, sweep, objective, best))
    return table


def results_table(grid: ResultGrid, sweep: Sweep, objective: Objective) -> pd.DataFrame:
    """One row per trial, the best objective first (failed trials last)."""
    table = pd.DataFrame([_row(result, sweep, objective) for result in grid])
    table = table.astype({"step": "Int64", "validations": "Int64"})
    return table.sort_values("objective", ascending=objective.mode == "min",
                             na_position="last", kind="stable").reset_index(drop=True)


def best_trial(table: pd.DataFrame) -> pd.Series | None:
    """The best trial that ran all its steps (else the best one stopped early), or None, of a
    ``results_table`` (best first)."""
    scored = table.dropna(subset=["objective"])
    finished = scored[scored["status"] == "finished"]
    pool = finished if not finished.empty else scored
    return None if pool.empty else pool.iloc[0]


def best_config(sweep: Sweep, best: pd.Series) -> Config:
    """The base config with the best trial's values, named ``<sweep>_best``."""
    return trial_config(sweep.config, {**{k: _plain(best[k]) for k in sweep.space},
                                       "run.name": f"{sweep.config.run.name}_best"})


def summary(table: pd.DataFrame, sweep: Sweep, objective: Objective,
            best: pd.Series | None) -> str:
    """Counts, the top trials and the best values against the defaults."""
    counts = table["status"].value_counts()
    columns = ["trial", "status", *sweep.space, "objective", "step"]
    tally = ", ".join(f"{counts[s]} {s}" for s in STATUSES if s in counts)
    lines = [f"tune: {len(table)} trials ({tally}) -> {sweep.folder / 'trials.csv'}",
             f"top {TOP} by {objective.name} ({objective.mode}):",
             table[columns].head(TOP).to_string(index=False)]
    if best is not None:
        values = " ".join(f"{k}={_plain(best[k])}" for k in sweep.space)
        lines.append(f"best: {values} -> {sweep.folder / 'best_config.yaml'}"
                     f"{_against_defaults(table, best)}")
    return "\n".join(lines)


def _row(result: Result, sweep: Sweep, objective: Objective) -> dict[str, Any]:
    metrics = result.metrics or {}
    params = _params(result, sweep)
    return {"trial": _trial(result), "status": _status(result, sweep, objective, params),
            **params, "objective": metrics.get("objective", math.nan),
            "step": metrics.get("step"), "validations": metrics.get(VALIDATION),
            **{k: v for k, v in metrics.items() if k.startswith("val_")},
            "time_s": metrics.get("time_total_s"), "baseline": params == base_values(sweep),
            "error": None if result.error is None else last_line(result.error),
            "checkpoint": metrics.get("checkpoint_path")}


def _status(result: Result, sweep: Sweep, objective: Objective, params: dict[str, Any]) -> str:
    if result.error is not None:
        return "failed"
    config = trial_config(sweep.config, params)
    total = config.seg.steps if objective.stage == "seg" else config.gan.steps
    return "finished" if (result.metrics or {}).get("step", 0) >= total else "stopped"


def _params(result: Result, sweep: Sweep) -> dict[str, Any]:
    """A trial's searched values; a failed trial's only in its folder's params.json."""
    config = result.config or json.loads((Path(result.path) / "params.json").read_text())
    return {key: config.get(key) for key in sweep.space}


def _trial(result: Result) -> str:
    """Tune's trial id (the name of its Train run in the sweep folder's train/)."""
    return result.metrics["trial_id"]


def _against_defaults(table: pd.DataFrame, best: pd.Series) -> str:
    defaults = table[table["baseline"] & (table["status"] == "finished")]
    if defaults.empty or best["baseline"]:
        return ""
    base = float(defaults["objective"].iloc[0])
    change = abs(best["objective"] - base) / abs(base) * 100 if base else math.nan
    return (f"; objective {best['objective']:.4g} vs {base:.4g} with the defaults "
            f"({change:.0f} % better)")


def _plain(value: Any) -> Any:
    """numpy scalars from a table row back to Python values."""
    return value.item() if hasattr(value, "item") else value
