"""``raylung tune`` end to end on CPU: tune_spaces/demo.yaml at test scale in its own Ray cluster,
interrupted by a Ctrl-C after the first finished trial, then ``--resume``d to the end, during
which one trial's own process is SIGKILLed and Tune restarts it.

One sweep serves every test here (it takes minutes): four trials, one at a time so that
ASHA sees them in a fixed order, and one of them fails. The failure is a real one: the space
searches ``data.samples_per_epoch`` over [4], so the baseline trial (``tune.evaluate_defaults``)
keeps the base value 5, which is no multiple of the batch size, and its driver raises.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml

from raylung.config import load_config

pytestmark = pytest.mark.slow

RAYLUNG = str(Path(sys.executable).parent / "raylung")
DEMO = Path(__file__).parents[2] / "tune_spaces" / "demo.yaml"
TINY = ["data.slice_size=[32,32]", "data.batch_size=2", "data.samples_per_epoch=5",
        "data.split_fractions=[0.5,0.5,0]", "gan.width=4", "gan.n_blocks=1", "gan.disc_width=4",
        "gan.disc_layers=2", "gan.steps=3", "gan.decay_start=1", "gan.log_every=1",
        "gan.checkpoint_every=1", "gan.val_samples=2", "tune.num_samples=4",
        "tune.max_concurrent_trials=1",
        "gan.val_pathological=2", "logging.tensorboard=false", "ray.num_cpus=2",
        # one restart is all the killed trial needs; the failing baseline is tried twice
        "run.max_failures=1",
        # 32 x 32 toy slices may hold no opacity, which leaves translation undefined (NaN)
        "tune.objective=composite", "tune.mode=min",
        # the plain G: a residual one starts as the identity, so 3-step trials would tie
        # and ASHA would stop none
        "gan.residual=false"]


@pytest.fixture(scope="module")
def sweep(phantom_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    spec = yaml.safe_load(DEMO.read_text())
    spec["space"]["data.samples_per_epoch"] = {"choice": [4]}
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump(spec))
    folder = root / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # own cluster
    with open(root / "first.log", "w") as log:
        proc = subprocess.Popen([RAYLUNG, "tune", "--space", str(space), *TINY,
                                 f"data.store={phantom_store.url}", f"run.storage_path={root}"],
                                start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
                                env=env)
        finished = _wait_for_a_finished_trial(folder, proc)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C
        interrupted = proc.wait(timeout=300)
    before = {trial: _train_run(folder, trial) for trial in finished}
    with open(root / "rerun.log", "w") as out, open(root / "rerun.err", "w") as err:
        proc = subprocess.Popen([RAYLUNG, "tune", "--resume", str(folder)], stdout=out,
                                stderr=err, env=env)
        killed = _kill_a_trial_after_its_first_checkpoint(folder, set(finished), proc)
        proc.wait(timeout=900)
    rerun = SimpleNamespace(stdout=(root / "rerun.log").read_text(),
                            stderr=(root / "rerun.err").read_text())
    assert proc.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    return SimpleNamespace(folder=folder, finished=finished, before=before, killed=killed,
                           rerun=rerun, interrupted=interrupted,
                           first=(root / "first.log").read_text(),
                           table=pd.read_csv(folder / "trials.csv"))


def test_every_trial_is_in_the_table(sweep):
    table = sweep.table
    assert len(table) == 4
    assert set(table["status"]) <= {"finished", "stopped", "failed"}
    assert table["time_s"].notna().sum() >= 3
    assert pd.read_parquet(sweep.folder / "trials.parquet")["trial"].tolist() == \
        table["trial"].tolist()
    assert "top 5 by composite (min)" in sweep.rerun.stdout


def test_the_console_has_a_line_per_validation_and_trial_end_not_tunes_tables(sweep):
    """Tune's status tables, its experiment box and each failed trial's traceback are off;
    raylung's lines reach every trial's last validation (the killed trial's last one before
    the kill never reached Tune: its run resumed past it)."""
    console = sweep.first + sweep.rerun.stdout
    reached = {}
    for trial, done in re.findall(r"^tune  validation \d+/\d+  trial (\S+) at (\d)/3: objective "
                                  r"\S+.* at most \S+ left$", console, re.MULTILINE):
        reached[trial] = int(done)
    scored = sweep.table.dropna(subset=["validations"])
    assert reached == dict(zip(scored["trial"], scored["validations"])), console[-3000:]
    assert re.search(r"^tune  trial \S+ stopped early at validation [12]/3 \(\d of 4 trials ",
                     console, re.MULTILINE)
    assert re.search(r"^tune  trial \S+ failed: ValueError: data.samples_per_epoch=5 must be a "
                     r"multiple .*\(1 of 4 trials ended\); its traceback: \S+error.txt$", console,
                     re.MULTILINE)
    assert f"tune  trial {sweep.killed} failed (" in sweep.rerun.stdout  # then restarted
    started = re.findall(r"^tune  trial (\S+) started: (.*)$", console, re.MULTILINE)
    assert {trial for trial, _ in started} == set(sweep.table["trial"])
    searched = {"data.samples_per_epoch", "gan.lambda_adv", "gan.lambda_surround"}
    assert all({value.split("=")[0] for value in values.split("  ")} == searched
               for _, values in started), started
    for tunes in ("Trial status", "Configuration for experiment", "errored after",
                  "Traceback", "Trial task failed"):
        assert tunes not in console + sweep.rerun.stderr, tunes


def test_a_ctrl_c_says_how_to_go_on_and_writes_no_results(sweep):
    """Tune's own Ctrl-C handler returned the unfinished trials as results: the sweep's table
    and best config were written as if it had ended, with exit status 0."""
    assert sweep.interrupted == 130, sweep.first[-3000:]
    assert sweep.first.strip().splitlines()[-1] == (
        f"raylung tune: interrupted; continue it with raylung tune --resume {sweep.folder}")
    assert "Tuner.restore" not in sweep.first and "top 5 by" not in sweep.first


def test_asha_stops_a_trial_early(sweep):
    stopped = sweep.table[sweep.table["status"] == "stopped"]
    assert not stopped.empty
    assert (stopped["step"] < 3).all()


def test_a_failed_trial_is_recorded_and_the_others_finish(sweep):
    failed = sweep.table[sweep.table["status"] == "failed"]
    assert len(failed) == 1
    assert failed["baseline"].item()
    assert "samples_per_epoch=5 must be a multiple" in failed["error"].item()
    assert (sweep.table["status"] == "finished").sum() >= 1
    assert sweep.table.loc[sweep.table["status"] != "failed", "objective"].notna().all()


def test_resume_reruns_only_the_unfinished_trials(sweep):
    assert sweep.finished
    for trial, run in sweep.before.items():
        assert _train_run(sweep.folder, trial) == run, f"{trial} was trained again"
        assert trial in set(sweep.table["trial"])
    assert len(list((sweep.folder / "train").iterdir())) == 3  # the failed trial never trains


def test_a_killed_trial_is_restarted_and_resumes_from_its_checkpoint(sweep):
    """run.max_failures is the trials' failure budget too: the trial whose process was
    SIGKILLed after its first checkpoint ends normally, having trained each step once."""
    row = sweep.table.set_index("trial").loc[sweep.killed]
    assert row["status"] in ("finished", "stopped"), row["error"]
    steps = [torch.load(c / "state_rank0.pt", weights_only=True)["step"]
             for c in sorted((sweep.folder / "train" / sweep.killed).glob("checkpoint_*"))
             if c.is_dir()]
    assert steps == list(range(1, int(row["step"]) + 1))
    # ASHA's rungs count validations from the run's start, not from the trial's restart
    assert row["validations"] == row["step"]


def test_the_best_config_loads_and_is_the_best_finished_trial(sweep):
    config = load_config(sweep.folder / "best_config.yaml")
    best = sweep.table[sweep.table["status"] == "finished"].iloc[0]
    assert config.gan.lambda_surround == pytest.approx(best["gan.lambda_surround"])
    assert config.gan.lambda_adv == pytest.approx(best["gan.lambda_adv"])
    assert config.data.samples_per_epoch == 4
    assert config.run.name == "demo_best"


def test_search_and_learning_curve_pngs(sweep):
    for name in ("search.png", "curves.png"):
        assert (sweep.folder / name).stat().st_size > 10_000


def _wait_for_a_finished_trial(folder: Path, proc: subprocess.Popen) -> list[str]:
    """Trial ids Tune's saved experiment state marks finished, once there is one."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        finished = [t["trial_id"] for t in _saved_trials(folder) if t["status"] == "TERMINATED"]
        if finished:
            return finished
        time.sleep(1)
    raise AssertionError(f"no trial finished (exit status {proc.poll()})")


def _kill_a_trial_after_its_first_checkpoint(folder: Path, done: set[str],
                                            proc: subprocess.Popen) -> str:
    """SIGKILL the process of the first trial outside ``done`` that registers a checkpoint
    (the sweep runs one trial at a time); returns its trial id."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        started = [run.parent.name for run in folder.glob("train/*/checkpoint_manager_snapshot.json")
                   if run.parent.name not in done]
        if started:
            pids = subprocess.run(["pgrep", "-f", "^ray::ImplicitFunc"], capture_output=True,
                                  encoding="utf-8").stdout.split()
            assert len(pids) == 1, f"trial processes: {pids}"
            os.kill(int(pids[0]), signal.SIGKILL)
            return started[0]
        time.sleep(0.05)
    raise AssertionError(f"no trial checkpointed (exit status {proc.poll()})")


def _saved_trials(folder: Path) -> list[dict]:
    try:
        state = json.loads(max(folder.glob("experiment_state-*.json")).read_text())
    except (ValueError, OSError):  # not written yet, or caught mid-write
        return []
    return [json.loads(trial) for trial, _ in state["trial_data"]]


def _train_run(folder: Path, trial: str) -> tuple:
    """What a rerun would change: the Train run's checkpoints and its snapshot's mtime."""
    run = folder / "train" / trial
    return (sorted(p.name for p in run.glob("checkpoint_*")),
            (run / "checkpoint_manager_snapshot.json").stat().st_mtime_ns)
