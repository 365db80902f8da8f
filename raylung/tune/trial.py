"""One trial: the Tune function trainable that runs the GAN job (and, for the downstream
objective, a short segmentation job with the trial's generator) as Ray Train runs.

This is Ray's Train V2 + Tune pattern: the trial's driver builds and fits the ``TorchTrainer``
(inside ``fit_gan`` / ``fit_seg``) with a Tune report callback, under a run name unique to the
trial (its Tune trial id, which survives a resume) inside the sweep folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune

from raylung.config import Config
from raylung.train.runner import fit_gan
from raylung.train.seg_runner import fit_seg
from raylung.tune.callback import ObjectiveReportCallback
from raylung.tune.objectives import objective_of
from raylung.tune.space import trial_config

TRAIN_FOLDER = "train"  # the trials' Ray Train runs, inside the sweep folder


def run_trial(params: dict[str, Any], base: dict[str, Any]) -> None:
    """Train with the sampled ``params`` over the sweep's ``base`` config (a JSON tree);
    a bad value or a failed run raises, and Tune records the trial as failed."""
    sweep = Config.model_validate(base)
    folder = Path(sweep.run.storage_path) / sweep.run.name / TRAIN_FOLDER
    config = trial_config(sweep, {**params, "run.name": tune.get_context().get_trial_id(),
                                  "run.storage_path": str(folder)})
    result = fit_gan(config, callbacks=[ObjectiveReportCallback(config, "gan")], progress=False)
    if objective_of(config.tune).stage == "seg":
        seg = trial_config(config, {
            "seg.generator": str(Path(result.checkpoint.path) / "generator_h2p.pt"),
            "seg.p_synth": config.tune.downstream_p_synth,
            "run.name": f"{config.run.name}_seg"})
        fit_seg(seg, callbacks=[ObjectiveReportCallback(seg, "seg")], progress=False)
