"""The sweep's results: which trial is best, and the summary against the defaults."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from raylung.tune.objectives import OBJECTIVES
from raylung.tune.plots import save_curves, save_search_plot
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
    assert best_trial(table, COMPOSITE)["trial"] == "t1"


def test_without_a_finished_trial_the_best_stopped_one_is_taken(table):
    assert best_trial(table[table["status"] != "finished"], COMPOSITE)["trial"] == "t3"


def test_the_best_config_carries_the_best_values(sweep, table):
    config = best_config(sweep, best_trial(table, COMPOSITE))
    assert (config.gan.lambda_surround, config.gan.lambda_adv) == (3.0, 0.2)
    assert config.run.name == "s_best"


def test_the_summary_compares_the_best_with_the_defaults(sweep, table):
    text = summary(table, sweep, COMPOSITE, best_trial(table, COMPOSITE))
    assert "4 trials (2 finished, 1 stopped, 1 failed)" in text.splitlines()[0]
    assert "objective 90 vs 120 with the defaults (25 % better)" in text


def test_the_pngs_draw_every_status(sweep, table, tmp_path):
    curves = {"t1": pd.DataFrame({"step": [10, 20, 30], "objective": [120.0, 100.0, 90.0]}),
              "t3": pd.DataFrame({"step": [10], "objective": [80.0]}), "t2": None}
    assert save_search_plot(table, sweep, COMPOSITE, "t1", tmp_path / "s.png").stat().st_size
    assert save_curves(curves, table, COMPOSITE, "t1", tmp_path / "c.png").stat().st_size
