"""A trial's Train -> Tune reports: checkpoint reports only, with the objective added.

Only checkpoint reports carry validation, so only they reach Tune: every result Tune sees
has the metric (Tune rejects results without it). Each carries ``validation``, the number of
the validation counted from the run's start, which ASHA's rungs count: Tune's own iteration
count starts again at 1 in a trial Tune restarts, whose run resumes from its checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

from ray.train import Checkpoint
from ray.tune.integration.ray_train import TuneReportCallback

from raylung.config import Config
from raylung.train.runner import steps_per_epoch
from raylung.tune.objectives import objective_of, score


VALIDATION = "validation"


def validation_number(config: Config, stage: str, step: int) -> int:
    """Which validation of its run a checkpoint at ``step`` is (1 for the first): one every
    ``gan.checkpoint_every`` steps, or every data epoch of the segmenter; the last one at
    the run's last step."""
    every = steps_per_epoch(config) if stage == "seg" else config.gan.checkpoint_every
    return math.ceil(step / every)


class ObjectiveReportCallback(TuneReportCallback):
    """Forwards rank 0's checkpoint reports of one stage ("gan" or "seg") to Tune, with
    ``objective``; a stage the objective does not score reports nothing."""

    def __init__(self, config: Config, stage: str) -> None:
        super().__init__()
        self.config = config
        self.objective = objective_of(config.tune)
        self.active = stage == self.objective.stage

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                     checkpoint: Checkpoint | None) -> None:
        if checkpoint is None or not self.active:
            return
        scores = dict(metrics[0])
        value = score(self.objective, scores, self.config.tune)
        scores[VALIDATION] = validation_number(self.config, self.objective.stage,
                                               int(scores["step"]))
        if value is not None:
            super().after_report(run_context, [{**scores, "objective": value}, *metrics[1:]],
                                 checkpoint)
