"""The sweep's PNGs: where the trials sat in the search space, and how each one learned."""

from __future__ import annotations

import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from raylung.plots import plt
from raylung.tune.objectives import Objective
from raylung.tune.space import Sweep

# The method's two weights when the space has them; otherwise its first two numeric fields.
PREFERRED = ("gan.lambda_surround", "gan.lambda_adv")
MARKERS = {"finished": "o", "stopped": "v"}


def search_figure(table: pd.DataFrame, sweep: Sweep, objective: Objective,
                  best: str | None) -> plt.Figure | None:
    """Trials at their values of two searched fields (or one field against the objective),
    coloured by the objective; stopped trials as triangles, failed ones as grey crosses."""
    keys = _axes(table, sweep)
    if not keys:
        return None
    x, y = keys[0], keys[1] if len(keys) > 1 else "objective"
    fig, ax = plt.subplots(figsize=(6.4, 5))
    scored = table.dropna(subset=["objective"])
    norm = Normalize(scored["objective"].min(), scored["objective"].max())
    cmap = "viridis_r" if objective.mode == "min" else "viridis"  # bright = good
    for status, marker in MARKERS.items():
        rows = scored[scored["status"] == status]
        ax.scatter(rows[x], rows[y], c=rows["objective"], cmap=cmap, norm=norm, marker=marker,
                   s=60, edgecolors="k", label=status)
    failed = table[table["status"] == "failed"]
    if y in failed and not failed.empty:
        ax.scatter(failed[x], failed[y], c="grey", marker="x", label="failed")
    _mark(ax, scored, best, x, y)
    for key, axis in ((x, "x"), (y, "y")):
        if "loguniform" in sweep.space.get(key, {}):
            getattr(ax, f"set_{axis}scale")("log")
            scale = getattr(ax, f"{axis}axis")
            scale.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 1 2 5 10 20 50 ...
            scale.set_major_formatter(ScalarFormatter())
            scale.set_minor_formatter(NullFormatter())
    if not scored.empty:
        fig.colorbar(ScalarMappable(norm, cmap), ax=ax,
                     label=f"{objective.name} ({objective.mode} is best)")
    ax.set(xlabel=x, ylabel=y, title=f"{sweep.config.run.name}: {len(table)} trials")
    ax.legend(fontsize=8)
    return fig


def curves_figure(curves: dict[str, pd.DataFrame | None], table: pd.DataFrame,
                  objective: Objective, best: str | None) -> plt.Figure:
    """The objective at each validation of every trial; stopped trials dashed, best bold."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    status = dict(zip(table["trial"], table["status"]))
    for trial, frame in curves.items():
        if frame is None or "objective" not in frame or "step" not in frame:
            continue
        frame = frame.drop_duplicates("step", keep="last").sort_values("step")
        ax.plot(frame["step"], frame["objective"], marker=".",
                linestyle="--" if status.get(trial) == "stopped" else "-",
                linewidth=2.5 if trial == best else 1, label=f"{trial} ({status.get(trial)})")
    ax.set(xlabel=f"{objective.stage} step", ylabel=f"{objective.name} ({objective.mode} is best)",
           title="learning curves (dashed: stopped early)")
    if len(curves) <= 12:
        ax.legend(fontsize=7)
    return fig


def _axes(table: pd.DataFrame, sweep: Sweep) -> list[str]:
    """The searched fields to plot: the preferred pair if searched, else numeric ones."""
    if all(key in sweep.space for key in PREFERRED):
        return list(PREFERRED)
    return [key for key in sweep.space if pd.api.types.is_numeric_dtype(table[key])][:2]


def _mark(ax: plt.Axes, scored: pd.DataFrame, best: str | None, x: str, y: str) -> None:
    """Ring the best trial and label the defaults."""
    top = scored[scored["trial"] == best]
    ax.scatter(top[x], top[y], s=260, facecolors="none", edgecolors="red", linewidths=2,
               label="best")
    for _, row in scored[scored["baseline"]].iterrows():
        ax.annotate("defaults", (row[x], row[y]), textcoords="offset points", xytext=(6, 6),
                    fontsize=8)
