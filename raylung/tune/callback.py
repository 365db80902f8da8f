"""A trial's Train -> Tune reports: checkpoint reports only, with the objective added.

Only checkpoint reports carry validation, so only they reach Tune: every result Tune sees
has the metric (Tune rejects results without it), and Tune's iterations are validations,
which is what ASHA's rungs count.
"""

from __future__ import annotations

from typing import Any

from ray.train import Checkpoint
from ray.tune.integration.ray_train import TuneReportCallback

from raylung.config import Config
from raylung.tune.objectives import objective_of, score


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
        if value is not None:
            super().after_report(run_context, [{**scores, "objective": value}, *metrics[1:]],
                                 checkpoint)
