"""A sweep: Ray Tune runs the trials (raylung/tune/trial.py), then the outputs are written.

    raylung tune --space tune_spaces/demo.yaml              # new sweep in run.storage_path/run.name
    raylung tune --resume sweeps/demo                       # continue a stopped sweep

The sweep folder holds Tune's experiment state, ``sweep.yaml`` (the resolved sweep, what
``--resume`` reads), ``train/<trial id>/`` (each trial's Ray Train run), and at the end
``trials.csv``/``trials.parquet``, ``best_config.yaml``, ``search.png`` and ``curves.png``.
"""

from __future__ import annotations

import os

import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, SearchAlgorithm, Searcher
from ray.tune.search.basic_variant import BasicVariantGenerator

from raylung.config import Config, ConfigError
from raylung.data.pipeline import open_store, select_cases
from raylung.io.write import write_atomic
from raylung.runtime import connect, free_port
from raylung.train.deepspeed_config import select_accelerator
from raylung.train.runner import check_placement, start_ray
from raylung.tune.callback import VALIDATION, validation_number
from raylung.tune.objectives import Objective, objective_of
from raylung.tune.progress import SweepProgress
from raylung.tune.results import write_outputs
from raylung.tune.space import SWEEP_FILE, Sweep, base_values, param_space
from raylung.tune.trial import run_trial

# Read by tune.run when it starts: Tune's Ctrl-C handler off (see run_sweep); Tune's own
# console output (status tables, each failed trial's traceback) off: SweepProgress prints it.
TUNE_ENV = {"TUNE_DISABLE_SIGINT_HANDLER": "1", "RAY_AIR_NEW_OUTPUT": "0",
            "TUNE_PRINT_ALL_TRIAL_ERRORS": "0"}


def run_sweep(sweep: Sweep, resume: bool = False) -> pd.DataFrame:
    """Run a new sweep, or continue the one in ``sweep.folder``, to its end; write the
    outputs and return the results table."""
    objective = check_sweep(sweep)
    if not resume and (sweep.folder / SWEEP_FILE).exists():
        raise ConfigError(f"{sweep.folder}: a sweep is already there; continue it with "
                          f"raylung tune --resume {sweep.folder}, or set another run.name")
    _start_ray(sweep.config)
    _check_resources(sweep.config, objective)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, base=sweep.config.model_dump(mode="json")),
        {"cpu": sweep.config.tune.driver_cpus})
    if resume and tune.Tuner.can_restore(str(sweep.folder)):
        tuner = tune.Tuner.restore(str(sweep.folder), trainable, resume_unfinished=True)
    else:
        _start_folder(sweep)
        tuner = tune.Tuner(trainable, param_space=param_space(sweep),
                           tune_config=_tune_config(sweep, objective),
                           run_config=tune.RunConfig(
                               name=sweep.config.run.name,
                               storage_path=sweep.config.run.storage_path,
                               verbose=0, callbacks=[SweepProgress(
                                   max_reports(sweep.config, objective), objective.mode)],
                               failure_config=tune.FailureConfig(
                                   max_failures=sweep.config.run.max_failures)))
    # Tune's own Ctrl-C handler ends the sweep and returns its unfinished trials as results,
    # which nothing tells from a finished sweep's: a Ctrl-C ends it as a crash would instead,
    # and --resume goes on from Tune's saved state and each trial's latest checkpoint.
    os.environ.update(TUNE_ENV)
    try:
        grid = tuner.fit()
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"continue it with raylung tune --resume {sweep.folder}") from None
    return write_outputs(grid, sweep, objective)


def check_sweep(sweep: Sweep) -> Objective:
    """Everything a sweep needs that is cheap to check before any trial starts."""
    config = sweep.config
    objective = objective_of(config.tune)
    if "://" in config.run.storage_path:
        raise ConfigError("run.storage_path: a sweep folder must be a path, not a URL; on a "
                          "cluster, one every node mounts (e.g. run.storage_path=/shared/sweeps)")
    if config.tune.search == "optuna":
        _check_optuna(sweep)
    _check_validation(config, objective)
    if objective.stage == "gan" and config.gan.checkpoint_every % config.gan.log_every:
        raise ConfigError("gan.checkpoint_every: make it a multiple of gan.log_every (the GAN "
                          "validates at checkpoints, and checkpoints only when it reports)")
    reports = max_reports(config, objective)
    if config.tune.scheduler != "none" and config.tune.grace_period > reports:
        raise ConfigError(f"tune.grace_period: {config.tune.grace_period} is more than the "
                          f"{reports} validations of a trial")
    return objective


def max_reports(config: Config, objective: Objective) -> int:
    """Reports a full trial sends Tune: one per checkpoint of the scored stage."""
    steps = config.seg.steps if objective.stage == "seg" else config.gan.steps
    return validation_number(config, objective.stage, steps)


def _tune_config(sweep: Sweep, objective: Objective) -> tune.TuneConfig:
    cfg = sweep.config.tune
    return tune.TuneConfig(metric="objective", mode=objective.mode,
                           search_alg=_search(sweep), scheduler=_scheduler(sweep, objective),
                           num_samples=cfg.num_samples)


def _search(sweep: Sweep) -> SearchAlgorithm | Searcher:
    """Random (with grid) or Optuna's TPE, ``max_concurrent_trials`` at a time; the base
    values first when asked for."""
    cfg = sweep.config.tune
    points = [base_values(sweep)] if cfg.evaluate_defaults else None
    if cfg.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return ConcurrencyLimiter(OptunaSearch(points_to_evaluate=points, seed=cfg.seed),
                                  cfg.max_concurrent_trials)
    return BasicVariantGenerator(points_to_evaluate=points, random_state=cfg.seed,
                                 max_concurrent=cfg.max_concurrent_trials)


def _scheduler(sweep: Sweep, objective: Objective) -> TrialScheduler:
    """ASHA or median stopping over validations (Tune's iterations); FIFO for none."""
    cfg = sweep.config.tune
    if cfg.scheduler == "asha":
        return ASHAScheduler(time_attr=VALIDATION,
                             max_t=max_reports(sweep.config, objective),
                             grace_period=cfg.grace_period, reduction_factor=cfg.reduction_factor,
                             stop_last_trials=False)  # a trial at max_t ends by itself, cleanly
    if cfg.scheduler == "median":
        return MedianStoppingRule(time_attr=VALIDATION, grace_period=cfg.grace_period)
    return FIFOScheduler()


def _check_optuna(sweep: Sweep) -> None:
    grids = [key for key, spec in sweep.space.items() if "grid" in spec]
    if grids:
        raise ConfigError(f"space.{grids[0]}: grid needs tune.search: random "
                          "(Optuna samples; use choice)")
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("tune.search: optuna is not installed "
                          "(pip install 'raylung[tune]')") from None


def _check_validation(config: Config, objective: Objective) -> None:
    """The val split must hold what the objective is scored on."""
    field = "val_cases" if objective.stage == "seg" else "val_samples"
    if getattr(getattr(config, objective.stage), field) == 0:
        raise ConfigError(f"tune.objective: {objective.name} is scored by validation; set "
                          f"{objective.stage}.{field} > 0")
    store = open_store(config)
    domains = (["healthy"] if objective.stage == "gan" else []) + (
        ["pathological"] if objective.reference or objective.stage == "seg" else [])
    for domain in domains:
        select_cases(store, config.data, "val", domain, labelled_only=True)


def _start_ray(config: Config) -> None:
    """Start or join Ray as every job does; a new local cluster also gets a dashboard whose
    address its workers know. Ray Train's placement-group cleaner asks the State API whether
    a stopped trial's controller is gone, and on a machine with several Ray clusters it cannot
    tell which one is its own: stopped trials would keep their CPUs."""
    if not (ray.is_initialized() or config.ray.address or os.environ.get("RAY_ADDRESS")):
        select_accelerator(config.scaling.use_gpu)
        port = free_port()
        os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
        connect(config.ray, include_dashboard=True, dashboard_host="127.0.0.1",
                dashboard_port=port)
    start_ray(config)


def _check_resources(config: Config, objective: Objective) -> None:
    """A trial that can never be placed would wait forever; refuse it up front. Its peak is
    its GAN run (driver, workers, both domains' crop readers) or, scored downstream, the U-Net
    run after it (driver, workers, their crop readers and GAN actors)."""
    for run in ("GAN run", "U-Net run") if objective.stage == "seg" else ("GAN run",):
        check_placement(config, run, "a trial's", config.tune.driver_cpus)


def _start_folder(sweep: Sweep) -> None:
    """Write ``sweep.yaml``, what ``--resume`` reads."""
    sweep.folder.mkdir(parents=True, exist_ok=True)
    write_atomic(sweep.folder / SWEEP_FILE, lambda tmp: tmp.write_text(sweep.to_yaml()))
    print(f"tune: sweep {sweep.folder} ({len(sweep.space)} fields, "
          f"{sweep.config.tune.num_samples} samples)")
