"""The sweep's results: which trial is best, and the summary against the defaults."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from raylung.tune.objectives import OBJECTIVES
from raylung.tune.plots import curves_figure, search_figure
from raylung.tune.results import best_config, best_trial, summary
from raylung.tune.space import load_sweep

COMPOSITE = OBJECTIVES["composite"]


@pytest.fixture
def sweep(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({
        "space": {"gan.lambda_surround": {"loguniform": [1, 100]},
                  "gan.lambda_adv": {"loguniform": [0.1, 10]}},
        "run": {"name": "s", "storage_path": str(tmp_path)}}))
    return load_sweep(path)


@pytest.fixture
def table():
    """Sorted as results_table sorts: best objective first, failed trials last."""
    return pd.DataFrame({
        "trial": ["t3", "t1", "t0", "t2"], "status": ["stopped", "finished", "finished", "failed"],
        "gan.lambda_surround": [50.0, 3.0, 10.0, 20.0], "gan.lambda_adv": [5.0, 0.2, 1.0, 2.0],
        "objective": [80.0, 90.0, 120.0, math.nan], "step": [10, 30, 30, None],
        "baseline": [False, False, True, False]})


def test_the_best_trial_is_the_best_that_ran_all_its_steps(table):
    assert best_trial(table)["trial"] == "t1"


def test_without_a_finished_trial_the_best_stopped_one_is_taken(table):
    assert best_trial(table[table["status"] != "finished"])["trial"] == "t3"


def test_the_best_config_carries_the_best_values(sweep, table):
    config = best_config(sweep, best_trial(table))
    assert (config.gan.lambda_surround, config.gan.lambda_adv) == (3.0, 0.2)
    assert config.run.name == "s_best"


def test_the_summary_compares_the_best_with_the_defaults(sweep, table):
    text = summary(table, sweep, COMPOSITE, best_trial(table))
    assert "4 trials (2 finished, 1 stopped, 1 failed)" in text.splitlines()[0]
    assert "objective 90 vs 120 with the defaults (25 % better)" in text


def test_the_search_plot_marks_each_status_the_best_trial_and_the_defaults(sweep, table):
    """Finished trials as circles, stopped ones as triangles, the failed one as a grey cross,
    a red ring on the best, "defaults" beside the baseline; log axes for loguniform fields."""
    ax = search_figure(table, sweep, COMPOSITE, "t1").axes[0]
    points = {c.get_label(): c.get_offsets().tolist() for c in ax.collections}
    assert points == {"finished": [[3.0, 0.2], [10.0, 1.0]], "stopped": [[50.0, 5.0]],
                      "failed": [[20.0, 2.0]], "best": [[3.0, 0.2]]}
    assert [t.get_text() for t in ax.texts] == ["defaults"]
    assert ax.texts[0].xy == (10.0, 1.0)
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("gan.lambda_surround", "gan.lambda_adv")


def test_the_curves_dash_stopped_trials_and_draw_the_best_bold(sweep, table):
    curves = {"t1": pd.DataFrame({"step": [10, 20, 30, 30], "objective": [120.0, 100.0, 95.0, 90.0]}),
              "t3": pd.DataFrame({"step": [10], "objective": [80.0]}), "t2": None}
    lines = {line.get_label(): line for line in
             curves_figure(curves, table, COMPOSITE, "t1").axes[0].get_lines()}
    assert set(lines) == {"t1 (finished)", "t3 (stopped)"}  # a failed trial has no curve
    best, stopped = lines["t1 (finished)"], lines["t3 (stopped)"]
    assert best.get_xdata().tolist() == [10, 20, 30]  # a repeated step: its last report
    assert best.get_ydata().tolist() == [120.0, 100.0, 90.0]
    assert (best.get_linestyle(), stopped.get_linestyle()) == ("-", "--")
    assert best.get_linewidth() > stopped.get_linewidth()
