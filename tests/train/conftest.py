"""Fixtures of the training tests: tiny CycleGAN and U-Net run configs, TensorBoard scalars."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path

import fsspec
import pytest
import torch
from ray.util.state import list_actors

from raylung.config import load_config


@pytest.fixture(scope="session")
def gan_config_in(phantom_store):
    """Builds the config of a tiny 2-step CycleGAN run ``name`` stored under ``runs``, from
    ``key=value`` overrides (for fixtures wider than one test)."""
    def build(runs, name, *extra):
        return load_config(None, [
            f"data.store={phantom_store.url}", "data.slice_size=[32,32]", "data.batch_size=2",
            "data.samples_per_epoch=4", "data.split_fractions=[1,0,0]",
            "data.reader_cpus=0.25", "data.read_concurrency=1", "gan.width=4", "gan.n_blocks=1",
            "gan.disc_width=4", "gan.disc_layers=2", "gan.steps=2", "gan.decay_start=1",
            "gan.log_every=1", "gan.checkpoint_every=2", "scaling.cpus_per_worker=0.5",
            f"run.name={name}", f"run.storage_path={runs}", *extra])
    return build


def _stored_in(tmp_path: Path, build_in):
    """``build_in`` with its runs stored in ``tmp_path/runs``: builds from ``name`` and
    ``key=value`` overrides."""
    def build(name, *extra):
        return build_in(tmp_path / "runs", name, *extra)
    return build


@pytest.fixture
def gan_config(gan_config_in, tmp_path):
    """Builds the config of a tiny 2-step CycleGAN run ``name`` (storage in ``tmp_path/runs``)
    from ``key=value`` overrides."""
    return _stored_in(tmp_path, gan_config_in)


@pytest.fixture(scope="session")
def seg_config_in(phantom_store):
    """Builds the config of a tiny 4-step U-Net run ``name`` on 32x32 slices, half the cases
    of each domain in val, stored under ``runs``, from ``key=value`` overrides (for fixtures
    wider than one test)."""
    def build(runs, name, *extra):
        return load_config(None, [
            f"data.store={phantom_store.url}", "data.slice_size=[32,32]", "data.batch_size=2",
            "data.samples_per_epoch=4", "data.split_fractions=[0.5,0.5,0]",
            "data.reader_cpus=0.25", "data.read_concurrency=1", "seg.channels=[4,8]",
            "seg.strides=[2]", "seg.num_res_units=1", "seg.steps=4", "seg.decay_start=2",
            "seg.log_every=1", "seg.synth_cpus=0.25",
            "scaling.cpus_per_worker=0.5", f"run.name={name}", f"run.storage_path={runs}", *extra])
    return build


@pytest.fixture
def seg_config(seg_config_in, tmp_path):
    """Builds the config of a tiny 4-step U-Net run ``name`` (storage in ``tmp_path/runs``)
    from ``key=value`` overrides."""
    return _stored_in(tmp_path, seg_config_in)


def _read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Each tag's (step, value) points in the event files of ``folder``, as TensorBoard shows
    them: files in name (time) order, a session start at step s dropping earlier points at s
    and later (a resumed writer's ``purge_step``), a record cut short by a kill ending a file."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            if pos + 16 + length > len(data):
                break
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 16 + length
            if event.session_log.status == SessionLog.START:
                scalars = {tag: [p for p in points if p[0] < event.step]
                           for tag, points in scalars.items()}
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.fixture(scope="session")
def read_scalars():
    """Reads TensorBoard scalars back from a folder of event files."""
    return _read_scalars


@pytest.fixture
def kill_and_rerun(cli_args, kill_after_first_checkpoint):
    """Runs a training command for ``config``, kills it (or, with ``stop=signal.SIGINT``,
    interrupts it as Ctrl-C does, which must say so) right after its first checkpoint (which
    must land mid-run), reruns it to the end and returns the rerun's stdout."""
    def run(command: str, config, total_steps: int, stop: int = signal.SIGKILL) -> str:
        from raylung.train.runner import latest_step

        cli = cli_args(command, config)
        snapshot = Path(config.run.storage_path) / config.run.name / "checkpoint_manager_snapshot.json"
        status, stderr = kill_after_first_checkpoint(cli, snapshot, stop=stop)
        if stop == signal.SIGINT:  # Ray Train aborted the run, exit 0 or 1, nothing said
            assert status == 130, stderr[-2000:]
            assert stderr.strip().splitlines()[-1] == (
                f"raylung {command}: interrupted; rerun the same command to resume")
        assert 0 < latest_step(config) < total_steps, "the kill should land mid-run"
        rerun = subprocess.run(cli, capture_output=True, encoding="utf-8", timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert "snapshot was found" not in rerun.stderr, "Ray's INFO lines stay in its logs"
        return rerun.stdout
    return run


@pytest.fixture(scope="session")
def fit_killing_a_worker():
    """Runs ``fit(config)`` while a thread SIGKILLs one of its Ray Train worker processes
    right after the run's first checkpoint is registered; returns the fit's result."""
    def run(fit, config):
        from raylung.train.runner import run_folder

        fs, folder = fsspec.core.url_to_fs(run_folder(config), **config.storage.storage_options)
        snapshot = f"{folder}/checkpoint_manager_snapshot.json"
        killed: list[int] = []
        killer = threading.Thread(target=_kill_a_worker_after, args=(fs, snapshot, killed))
        killer.start()
        result = fit(config)
        killer.join()
        assert killed, "no worker was killed"
        return result
    return run


def _kill_a_worker_after(fs, snapshot: str, killed: list[int], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not fs.exists(snapshot) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = list_actors(filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    if workers:
        os.kill(workers[-1].pid, signal.SIGKILL)
        killed.append(workers[-1].pid)


@pytest.fixture(scope="session")
def assert_same_weights():
    """Asserts two modules hold the same weights (to float32 round-off)."""
    def check(a: torch.nn.Module, b: torch.nn.Module) -> None:
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.allclose(x, y, atol=1e-6), name
    return check
