"""Training metrics to TensorBoard and MLflow, logged from Ray Train's controller.

A ``ray.train.UserCallback`` sees every ``ray.train.report`` after all workers made it; the
loggers here write rank 0's numeric metrics with its reported ``step`` as the x axis, so every
raylung trainer logs the same way and the workers carry no logging code::

    <run.storage_path>/<run.name>/tensorboard/events.out.tfevents.*     tensorboard --logdir
    <run.storage_path>/<run.name>/metrics.csv                           always: one row a report
    logging.mlflow_tracking_uri=http://HOST:5000                        one MLflow run per run.name

The files reach their storage at every checkpoint and at most every ``SYNC_EVERY_S`` between
(see ``Sync``): rewriting them whole at every report would cost time and upload bytes
quadratic in the length of a run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import tempfile
import time
from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from types import ModuleType
from typing import Any

import fsspec
import pandas as pd
from ray.train import Checkpoint, UserCallback
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.summary import scalar

from raylung.config import Config, ConfigError, flat_items, public_tree
from raylung.io.write import write_bytes
from raylung.secrets import redacted

RUN_TAG = "raylung.run_folder"
RUN_KEY_TAG = "raylung.run_key"  # the folder's sha256: found by a filter whatever its quotes
METRICS_TABLE = "metrics.csv"
SYNC_EVERY_S = 30.0
EVENT_FILE_BYTES = 2**20  # a TensorBoard file this large is closed and a new one begun


def logging_callbacks(config: Config, run_folder: str) -> list[UserCallback]:
    """The loggers ``config.logging`` asks for; MLflow is reached now, so a bad URI or a
    missing package fails before training starts."""
    options = config.storage.storage_options
    callbacks: list[UserCallback] = [MetricsTable(f"{run_folder}/{METRICS_TABLE}", options)]
    if config.logging.tensorboard:
        callbacks.append(TensorBoardLogger(f"{run_folder}/tensorboard", options))
    if config.logging.mlflow_tracking_uri:
        run_id = start_mlflow_run(config, run_folder)
        callbacks.append(MLflowLogger(config.logging.mlflow_tracking_uri, run_id))
    return callbacks


def rank_zero_scalars(metrics: list[dict[str, Any]]) -> tuple[int, dict[str, float]]:
    """Rank 0's reported ``step`` (every raylung trainer reports one) and its other numeric
    metrics; the other ranks report the same keys for their own shard."""
    row = metrics[0]
    scalars = {key: float(value) for key, value in row.items()
               if key != "step" and isinstance(value, Real) and not isinstance(value, bool)}
    return int(row["step"]), scalars


class Sync:
    """When a logger writes its whole file out: at a report with a checkpoint (what a resume
    starts from; rows after it are replaced anyway), after a failure, and otherwise once
    ``every_s`` seconds have passed since the last write."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last = -math.inf

    def due(self, checkpoint: Checkpoint | None) -> bool:
        """Whether this report's write is due; if so the clock restarts."""
        now = time.monotonic()
        if checkpoint is None and now - self._last < self.every_s:
            return False
        self._last = now
        return True


class TensorBoardLogger(UserCallback):
    """Writes rank 0's scalars as TensorBoard events into ``folder`` (a path or fsspec URL,
    reached with ``storage_options``).

    Events are appended to a local file at every report (unlike ``SummaryWriter``'s
    background thread, synchronously); for a URL that file is uploaded when ``Sync`` says so.
    A step at or before the last one logged (a resume, or Ray Train restarting the workers
    from a checkpoint) starts a new file, so TensorBoard drops what was logged after it; so
    does a file of ``file_bytes``, so an upload never carries the whole history."""

    def __init__(self, folder: str, storage_options: dict[str, Any] | None = None,
                 sync_every_s: float = SYNC_EVERY_S,
                 file_bytes: float = EVENT_FILE_BYTES) -> None:
        self.folder = folder
        self.storage_options = storage_options or {}
        self._sync = Sync(sync_every_s)
        self._file_bytes = file_bytes
        self._local = ""
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._events: EventsWriter | None = None
        self._file = Path()
        self._step = -1

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                     checkpoint: Checkpoint | None) -> None:
        """One event per scalar at rank 0's step."""
        step, scalars = rank_zero_scalars(metrics)
        if (self._events is None or step <= self._step
                or self._file.stat().st_size >= self._file_bytes):
            self._open(step)
        self._step = step
        now = time.time()
        for key, value in scalars.items():
            self._events.write_event(Event(wall_time=now, step=step, summary=scalar(key, value)))
        self._events.flush()
        if self._sync.due(checkpoint):
            self._upload()

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        """What a failed run logged reaches its storage."""
        self._upload()

    def _open(self, step: int) -> None:
        """A new event file that starts with a session start at ``step``: TensorBoard then drops
        what an interrupted earlier attempt logged at ``step`` and later."""
        if self._events is not None:
            self._upload()  # the file is finished: its last version goes up once
            self._events.close()
        elif "://" in self.folder:  # written here, uploaded when due, removed with self
            self._scratch = tempfile.TemporaryDirectory(prefix="raylung-tb-")
            self._local = self._scratch.name
        else:
            self._local = self.folder
        Path(self._local).mkdir(parents=True, exist_ok=True)
        # The name holds whole seconds only: a nanosecond suffix keeps a rerun within the same
        # second from overwriting this file and sorts it after it, as TensorBoard reads them.
        suffix = f".{time.time_ns():020d}"
        self._events = EventsWriter(f"{self._local}/events", suffix)
        self._file = next(Path(self._local).glob(f"events.out.tfevents.*{suffix}"))
        self._events.write_event(Event(wall_time=time.time(), step=step,
                                       session_log=SessionLog(status=SessionLog.START)))

    def _upload(self) -> None:
        """The open event file to the URL (a local folder has it already)."""
        if "://" not in self.folder or self._events is None:
            return
        fs, root = fsspec.core.url_to_fs(self.folder, **self.storage_options)
        fs.put_file(str(self._file), f"{root}/{self._file.name}")


class MetricsTable(UserCallback):
    """Rank 0's scalars as a CSV table (``step`` first), written whole when ``Sync`` says so.
    A step at or before the last row's (a resume, or Ray Train restarting the workers from a
    checkpoint) replaces the rows logged at or after it."""

    def __init__(self, path: str, storage_options: dict[str, Any] | None = None,
                 sync_every_s: float = SYNC_EVERY_S) -> None:
        self.path = path
        self.storage_options = storage_options or {}
        self._sync = Sync(sync_every_s)
        self._rows: list[dict[str, float]] | None = None

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                     checkpoint: Checkpoint | None) -> None:
        """One row at rank 0's step."""
        step, scalars = rank_zero_scalars(metrics)
        if self._rows is None:
            self._rows = read_metrics_table(self.path, self.storage_options).to_dict("records")
        while self._rows and self._rows[-1]["step"] >= step:
            self._rows.pop()
        self._rows.append({"step": step, **scalars})
        if self._sync.due(checkpoint):
            self._write()

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        """What a failed run logged reaches its storage."""
        if self._rows is not None:
            self._write()

    def _write(self) -> None:
        write_bytes(self.path, pd.DataFrame(self._rows).to_csv(index=False).encode(),
                    self.storage_options)


def read_metrics_table(path: str, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """The metrics table of a run folder (empty when the run has not reported yet)."""
    fs, local = fsspec.core.url_to_fs(path, **(storage_options or {}))
    if not fs.exists(local):
        return pd.DataFrame(columns=["step"])
    with fs.open(local) as handle:
        return pd.read_csv(handle)


class MLflowLogger(UserCallback):
    """Logs rank 0's scalars to the MLflow run ``run_id`` and marks it FAILED if a worker fails."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id

    @functools.cached_property
    def _client(self) -> Any:
        return import_mlflow().MlflowClient(self.tracking_uri)

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                     checkpoint: Checkpoint | None) -> None:
        """One batch per report: every scalar at rank 0's step."""
        from mlflow.entities import Metric

        step, scalars = rank_zero_scalars(metrics)
        now = int(time.time() * 1000)
        self._client.log_batch(self.run_id, metrics=[Metric(key, value, now, step)
                                                     for key, value in scalars.items()])

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        """A failed run shows as FAILED; a rerun that resumes it sets it RUNNING again."""
        self._client.set_terminated(self.run_id, "FAILED")

    def finish(self) -> None:
        """Mark the run FINISHED (the driver calls it after a successful fit: Ray Train's
        callbacks have no end-of-run hook)."""
        self._client.set_terminated(self.run_id, "FINISHED")


def finish_logging(callbacks: Sequence[UserCallback]) -> None:
    """Close the loggers among ``callbacks`` that keep a run open (MLflow) after success."""
    for callback in callbacks:
        if isinstance(callback, MLflowLogger):
            callback.finish()


def start_mlflow_run(config: Config, run_folder: str) -> str:
    """The id of the MLflow run of ``run_folder``: the one an earlier attempt made (resume
    continues it), else a new run named ``run.name`` with the resolved config as params."""
    mlflow = import_mlflow()
    from mlflow.entities import Param
    from mlflow.exceptions import MlflowException

    settings = config.logging
    try:
        client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
        experiment = client.get_experiment_by_name(settings.mlflow_experiment)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else client.create_experiment(settings.mlflow_experiment))
        key = hashlib.sha256(run_folder.encode()).hexdigest()
        earlier = client.search_runs([experiment_id], f"tags.`{RUN_KEY_TAG}` = '{key}'",
                                     max_results=1)
        if earlier:
            client.update_run(earlier[0].info.run_id, status="RUNNING")
            return earlier[0].info.run_id
        run = client.create_run(experiment_id, run_name=config.run.name,
                                tags={RUN_TAG: run_folder, RUN_KEY_TAG: key})
    except MlflowException as err:
        raise ConfigError(redacted(f"logging.mlflow_tracking_uri={settings.mlflow_tracking_uri}: "
                                   f"{' '.join(err.message.split())}")) from None
    client.log_batch(run.info.run_id,
                     params=[Param(key, value) for key, value in config_params(config).items()])
    return run.info.run_id


def config_params(config: Config) -> dict[str, str]:
    """The resolved config as flat ``section.key`` strings, secrets redacted."""
    tree = public_tree(config)
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in flat_items(tree)}


def import_mlflow() -> ModuleType:
    """The mlflow module, or a one-line error naming the fix."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError("logging.mlflow_tracking_uri is set but mlflow is not installed: "
                          "pip install mlflow-skinny") from None
    return mlflow
