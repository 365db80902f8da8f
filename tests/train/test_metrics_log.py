"""Training metrics to TensorBoard and MLflow through Ray Train's controller callbacks (a real
run's TensorBoard scalars are checked in test_train_gan.py)."""

from __future__ import annotations

import gc
import re
import sys
import tempfile
import uuid
from pathlib import Path

import fsspec
import pytest
from ray.train import UserCallback

from raylung.config import ConfigError, load_config
from raylung.train.metrics_log import (RUN_TAG, MetricsTable, MLflowLogger, TensorBoardLogger,
                                      logging_callbacks, read_metrics_table)
from raylung.train.runner import run_config


CHECKPOINT = object()  # what a report with a checkpoint hands the loggers (not None)


def test_resumed_run_replaces_what_the_interrupted_one_logged_after_its_checkpoint(
        tmp_path, read_scalars):
    for steps, scale in (([1, 2, 3], 1.0), ([2, 3], 10.0)):  # killed at 3, resumed from 1
        logger = TensorBoardLogger(str(tmp_path))
        for step in steps:
            logger.after_report(None, [{"step": step, "loss": scale * step, "tag": "x"}], None)
    assert read_scalars(tmp_path) == {"loss": [(1, 1.0), (2, 20.0), (3, 30.0)]}


def test_restarted_workers_replace_what_they_logged_after_the_checkpoint(tmp_path, read_scalars):
    """Ray Train restarts the worker group in the same controller, so the same loggers see
    the steps after the checkpoint again."""
    logger = TensorBoardLogger(str(tmp_path))
    table = MetricsTable(str(tmp_path / "metrics.csv"))
    for step, scale, checkpoint in ((1, 1.0, None), (2, 1.0, CHECKPOINT), (3, 1.0, None),
                                    (3, 10.0, None), (4, 10.0, CHECKPOINT)):
        for callback in (logger, table):
            callback.after_report(None, [{"step": step, "loss": scale * step}], checkpoint)
    assert read_scalars(tmp_path) == {"loss": [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]}
    assert read_metrics_table(str(tmp_path / "metrics.csv"))["loss"].tolist() == [1, 2, 30, 40]


def test_events_reach_a_storage_url_when_due_and_leave_no_local_copy(tmp_path, read_scalars):
    """Written locally; uploaded at the first report, at checkpoints, after a failure and
    when a restart closes the file, but not at every report: that would upload bytes
    quadratic in the run's length. The local copy goes with the logger."""
    url = f"memory://runs-{uuid.uuid4().hex}/tb"
    fs, root = fsspec.core.url_to_fs(url)

    def uploaded() -> dict[str, list[tuple[int, float]]]:
        folder = Path(tempfile.mkdtemp(dir=tmp_path))
        for path in fs.ls(root, detail=False):
            fs.get_file(path, str(folder / Path(path).name))
        return read_scalars(folder)

    before = set(Path(tempfile.gettempdir()).glob("raylung-tb-*"))
    logger = TensorBoardLogger(url, sync_every_s=3600)
    assert len(set(Path(tempfile.gettempdir()).glob("raylung-tb-*")) - before) == 0
    reports = [(5, None), (10, None), (15, CHECKPOINT), (20, None), (25, None)]
    for step, checkpoint in reports:
        logger.after_report(None, [{"step": step, "loss": step / 4}], checkpoint)
    assert uploaded() == {"loss": [(5, 1.25), (10, 2.5), (15, 3.75)]}
    logger.after_report(None, [{"step": 20, "loss": 2.0}], None)  # restarted from step 15
    assert uploaded() == {"loss": [(5, 1.25), (10, 2.5), (15, 3.75), (20, 5.0), (25, 6.25)]}
    logger.after_exception(None, {0: RuntimeError("worker died")})
    assert uploaded() == {"loss": [(5, 1.25), (10, 2.5), (15, 3.75), (20, 2.0)]}
    assert len(fs.ls(root)) == 2
    assert len(set(Path(tempfile.gettempdir()).glob("raylung-tb-*")) - before) == 1
    del logger
    gc.collect()
    assert set(Path(tempfile.gettempdir()).glob("raylung-tb-*")) == before


def test_a_large_event_file_is_closed_and_a_new_one_begun(tmp_path, read_scalars):
    """On object storage an upload then carries one file's worth, not the run's history."""
    url = f"memory://runs-{uuid.uuid4().hex}/tb"
    logger = TensorBoardLogger(url, sync_every_s=3600, file_bytes=400)
    for step in range(1, 31):
        logger.after_report(None, [{"step": step, "loss": step / 4}], CHECKPOINT)
    fs, root = fsspec.core.url_to_fs(url)
    files = fs.ls(root, detail=False)
    assert len(files) > 3 and max(fs.size(f) for f in files) < 800
    for path in files:
        fs.get_file(path, str(tmp_path / Path(path).name))
    assert read_scalars(tmp_path) == {"loss": [(step, step / 4) for step in range(1, 31)]}


def test_loggers_come_before_the_callers_callbacks(tmp_path):
    caller = UserCallback()
    config = load_config(None, [f"run.storage_path={tmp_path}"])
    callbacks = run_config(config, [caller]).callbacks
    assert [type(c) for c in callbacks] == [MetricsTable, TensorBoardLogger, UserCallback]
    assert callbacks[0].path == f"{tmp_path}/raylung/metrics.csv"
    assert callbacks[1].folder == f"{tmp_path}/raylung/tensorboard"


def test_metrics_table_keeps_one_row_per_step_across_a_resume(tmp_path):
    path = str(tmp_path / "run" / "metrics.csv")
    first = MetricsTable(path)
    for step, checkpoint in ((1, None), (2, CHECKPOINT), (3, None)):
        first.after_report(None, [{"step": step, "loss": 1.0 / step, "tag": "x"}], checkpoint)
    resumed = MetricsTable(path)  # a rerun after a kill, resuming from the step-2 checkpoint
    resumed.after_report(None, [{"step": 3, "loss": 0.25, "val_dice": 0.5}], CHECKPOINT)
    table = read_metrics_table(path)
    assert table["step"].tolist() == [1, 2, 3]
    assert table["loss"].tolist() == [1.0, 0.5, 0.25]
    assert table["val_dice"].isna().tolist() == [True, True, False]
    assert "tag" not in table  # only numbers


def test_metrics_table_is_written_at_checkpoints_failures_and_when_time_is_up(tmp_path):
    """Not at every report: rewriting the whole table each time costs time quadratic in the
    run's length. What a resume starts from (a checkpoint) is always written."""
    path = str(tmp_path / "metrics.csv")
    table = MetricsTable(path, sync_every_s=3600)
    for step, checkpoint in ((1, None), (2, None), (3, CHECKPOINT), (4, None)):
        table.after_report(None, [{"step": step, "loss": 1.0}], checkpoint)
        if step == 2:
            assert read_metrics_table(path)["step"].tolist() == [1]
    assert read_metrics_table(path)["step"].tolist() == [1, 2, 3]
    table.after_exception(None, {1: RuntimeError("worker died")})
    assert read_metrics_table(path)["step"].tolist() == [1, 2, 3, 4]
    often = MetricsTable(str(tmp_path / "often.csv"), sync_every_s=0)
    for step in (1, 2):
        often.after_report(None, [{"step": step, "loss": 1.0}], None)
    assert read_metrics_table(str(tmp_path / "often.csv"))["step"].tolist() == [1, 2]


@pytest.mark.parametrize("folder", ["/runs/raylung", """/runs/o'brien's "best" run"""])
def test_mlflow_run_holds_params_and_rank_zero_metrics_and_is_resumed(folder, tmp_path,
                                                                      monkeypatch):
    """One MLflow run per run folder, whatever quotes its path holds: params once, metrics at
    rank 0's step, FAILED on a worker error and RUNNING again when a rerun resumes it; keys and
    URIs stay out."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow-skinny has no database store
    uri = f"file://{tmp_path}/mlruns"
    config = load_config(None, [f"logging.mlflow_tracking_uri={uri}", "logging.tensorboard=false",
                                "storage.storage_options={secret: s3cr3t}"])
    table, logger = logging_callbacks(config, folder)
    assert isinstance(table, MetricsTable) and isinstance(logger, MLflowLogger)
    logger.after_report(None, [{"step": 4, "loss_g": 0.5, "tag": "x"}, {"step": 4, "loss_g": 9.0}],
                        None)
    logger.after_exception(None, {0: RuntimeError("worker died")})
    client = MlflowClient(uri)
    assert client.get_run(logger.run_id).info.status == "FAILED"
    _, resumed = logging_callbacks(config, folder)
    run = client.get_run(resumed.run_id)
    assert resumed.run_id == logger.run_id and run.info.status == "RUNNING"
    assert run.data.tags[RUN_TAG] == folder
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss_g")] == [
        (4, 0.5)]
    assert run.data.params["gan.lambda_cyc"] == "10.0"
    assert run.data.params["data.slice_size"] == "[256, 256]"
    assert run.data.params["storage.storage_options.secret"] == "<redacted>"
    assert "s3cr3t" not in str(run.data.params)


@pytest.mark.parametrize("uri", ["nosuch://me:pw@127.0.0.1/x", "http://me:pw@127.0.0.1:9"])
def test_unusable_mlflow_uri_fails_before_training_in_one_line_without_its_password(uri,
                                                                                   monkeypatch):
    """The line reaches the console, Ray's job logs and a sweep's trials table: MLflow's own
    message repeats the URL, password and all."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # port 9 refuses at once
    config = load_config(None, [f"logging.mlflow_tracking_uri={uri}"])
    with pytest.raises(ConfigError) as failed:
        logging_callbacks(config, "/runs/raylung")
    line = str(failed.value)
    assert re.fullmatch(r"logging.mlflow_tracking_uri=\w+://me:<redacted>@\S+: [^\n]+", line)
    assert "pw" not in line


def test_missing_mlflow_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # how Python marks a module not importable
    config = load_config(None, ["logging.mlflow_tracking_uri=http://127.0.0.1:5000"])
    with pytest.raises(ConfigError, match="pip install mlflow-skinny"):
        logging_callbacks(config, "/runs/raylung")
