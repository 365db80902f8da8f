"""Objectives: what each one reads from a report, its direction, and the clear refusals."""

from __future__ import annotations

import math

import pytest

from raylung.config import ConfigError, TuneConfig, load_config
from raylung.tune.callback import validation_number
from raylung.tune.objectives import OBJECTIVES, objective_of, score

REPORT = {"val_surround_l1_hu": 12.0, "val_realism_hu": 100.0, "val_shape_dice": 0.9,
          "val_translation": 0.5, "val_wall_dice": 0.8, "loss_adv": 0.3}


@pytest.mark.parametrize("name, value", [("shape", 12.0), ("realism", 100.0),
                                         ("composite", 112.0), ("translation", 0.4)])
def test_gan_objectives_read_the_validation_metrics(name, value):
    assert score(OBJECTIVES[name], REPORT, TuneConfig(objective=name)) == value


def test_composite_weights_both_terms():
    cfg = TuneConfig(shape_weight=2.0, realism_weight=0.5)
    assert score(OBJECTIVES["composite"], REPORT, cfg) == 2 * 12 + 0.5 * 100


def test_a_report_without_validation_or_with_nan_gives_none():
    assert score(OBJECTIVES["composite"], {"loss_adv": 0.3}, TuneConfig()) is None
    assert score(OBJECTIVES["shape"], {"val_surround_l1_hu": math.nan}, TuneConfig()) is None


def test_downstream_is_the_pathological_dice_of_the_segmentation_stage():
    objective = OBJECTIVES["downstream"]
    assert (objective.mode, objective.stage) == ("max", "seg")
    assert score(objective, {"val_dice": 0.8}, TuneConfig(objective="downstream")) == 0.8


def test_the_default_is_translation_and_maximised():
    """Disease drawn in the lung, discounted when the wall moves: G = identity scores 0."""
    assert objective_of(TuneConfig()).name == "translation"
    assert objective_of(TuneConfig(mode="max")).mode == "max"


def test_a_mode_against_the_objective_is_refused():
    with pytest.raises(ConfigError, match="tune.mode: translation is best at its maximum"):
        objective_of(TuneConfig(mode="min"))


def test_validations_are_numbered_from_the_runs_start():
    """What ASHA counts: a trial Tune restarts resumes mid-run, at its checkpoint's number."""
    config = load_config(None, ["gan.steps=250", "gan.decay_start=200", "gan.checkpoint_every=100",
                                "seg.steps=24", "seg.decay_start=12", "data.samples_per_epoch=16",
                                "data.batch_size=4"])
    assert [validation_number(config, "gan", s) for s in (100, 200, 250)] == [1, 2, 3]
    assert [validation_number(config, "seg", s) for s in (4, 20, 24)] == [1, 5, 6]
