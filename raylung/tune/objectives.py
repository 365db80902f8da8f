"""What a trial is scored by (``tune.objective``), from the metrics of one checkpoint report.

    shape       val_surround_l1_hu: mean |G(h) - h| in the band outside the healthy lung (HU),
                the change the surrounding-L1 loss forbids; it keeps h's mask valid.   min
    realism     val_realism_hu: distance of G(h)'s lung voxels from real pathological lungs
                (intensity + texture Wasserstein-1, HU; raylung/evaluate/realism.py).   min
    composite   shape_weight x shape + realism_weight x realism (both HU).             min
    translation val_translation x val_wall_dice: the share of the way from healthy to real
                disease that G(h)'s lung goes (raylung/evaluate/disease.py), discounted when
                the chest wall's dense voxels move.                                      max
    downstream  val_dice: pathological val Dice of a short segmentation run (train-seg)
                that learns from the trial's generator (seg.* sets its length).         max

Not the rule-based shape Dice of validation: it calls every opacity G adds "not lung", so it
penalises exactly the realism the search looks for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raylung.config import ConfigError, TuneConfig

Score = Callable[[dict[str, Any], TuneConfig], float | None]


@dataclass(frozen=True)
class Objective:
    """How one objective is computed and which way is better."""

    name: str
    mode: str
    stage: str  # the run whose checkpoint reports it scores: "gan" or "seg"
    reference: bool  # scored against real pathological val samples
    score: Score


def _shape(m: dict[str, Any], cfg: TuneConfig) -> float | None:
    return m.get("val_surround_l1_hu")


def _realism(m: dict[str, Any], cfg: TuneConfig) -> float | None:
    return m.get("val_realism_hu")


def _composite(m: dict[str, Any], cfg: TuneConfig) -> float | None:
    shape, realism = _shape(m, cfg), _realism(m, cfg)
    if shape is None or realism is None:
        return None
    return cfg.shape_weight * shape + cfg.realism_weight * realism


def _translation(m: dict[str, Any], cfg: TuneConfig) -> float | None:
    translation, wall = m.get("val_translation"), m.get("val_wall_dice")
    return None if translation is None or wall is None else translation * wall


def _downstream(m: dict[str, Any], cfg: TuneConfig) -> float | None:
    return m.get("val_dice")


OBJECTIVES = {o.name: o for o in (
    Objective("shape", "min", "gan", False, _shape),
    Objective("realism", "min", "gan", True, _realism),
    Objective("composite", "min", "gan", True, _composite),
    Objective("translation", "max", "gan", True, _translation),
    Objective("downstream", "max", "seg", False, _downstream),
)}


def objective_of(cfg: TuneConfig) -> Objective:
    """The configured objective; a ConfigError when ``tune.mode`` contradicts it."""
    objective = OBJECTIVES[cfg.objective]
    if cfg.mode not in (None, objective.mode):
        raise ConfigError(f"tune.mode: {objective.name} is best at its {objective.mode}imum; "
                          f"mode {cfg.mode} would search for the worst trial")
    return objective


def score(objective: Objective, metrics: dict[str, Any], cfg: TuneConfig) -> float | None:
    """The objective's value for one report, or None when the report cannot give it."""
    value = objective.score(metrics, cfg)
    return float(value) if value is not None and math.isfinite(value) else None
