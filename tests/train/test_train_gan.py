"""train-gan through Ray Train with real DeepSpeed engines on 2 CPU workers (gloo)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import fsspec
import pandas as pd
import pytest
import torch

from raylung.config import load_config
from raylung.networks import load_generator
from raylung.train.checkpoint import engine_weights
from raylung.train.cyclegan import Generators
from raylung.train.runner import fit_gan

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.slow]


# Every ZeRO stage is checked in one process by the gradient test (test_deepspeed_engines.py);
# across Ray Train workers, stage 2 runs here, stage 1 in the segmenter's 2-worker test (a
# Ray Train run costs about a minute on 2 cores). This run also reads 3-slice context
# (data.context_slices=1: G maps 3 channels to 3) and accumulates 2 micro-batches per
# optimiser step.
def test_two_workers_zero_stage_2(gan_config):
    config = gan_config("zero2", "deepspeed.zero_stage=2", "scaling.num_workers=2",
                        "data.context_slices=1", "deepspeed.grad_accum=2")
    result = fit_gan(config)
    assert result.error is None
    assert result.metrics["step"] == 2
    for key in ("loss_adv", "loss_cyc", "loss_id", "loss_surround", "loss_d",
                "data_wait_fraction", "steps_per_s"):
        assert key in result.metrics
    generator, _ = load_generator(f"{result.checkpoint.path}/generator_h2p.pt")
    assert generator(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    for engine in ("generators", "discriminators"):  # DeepSpeed's own record of each engine
        state = Path(result.checkpoint.path, engine, "state")
        record = torch.load(state / "mp_rank_00_model_states.pt", weights_only=True)
        assert record["ds_config"]["zero_optimization"]["stage"] == 2
        # 2 steps of 2 slices on each of 2 workers, accumulated: 1 optimiser step of 8 slices
        assert (record["global_steps"], record["global_samples"]) == (1, 8)
        shards = sorted(p.name.split("_")[3] for p in state.glob("zero_pp_rank_*_optim_states.pt"))
        assert shards == ["0", "1"]
    states = [torch.load(Path(result.checkpoint.path, f"state_rank{r}.pt"), weights_only=True)
              for r in (0, 1)]
    assert ["ema_g" in state for state in states] == [True, False]  # rank 0 exports G


def test_3d_patches_train_validate_and_export(gan_config):
    """The CycleGAN on 3-D patches: 3-D networks, the validation's scores on patches, and a G
    that maps a patch to one of the same shape."""
    config = gan_config("patch3d", "data.mode=patch3d", "data.patch_size=[12,24,24]",
                        "data.split_fractions=[0.5,0.5,0]", "gan.val_samples=2",
                        "gan.val_pathological=2", "scaling.num_workers=1")
    result = fit_gan(config)
    assert result.error is None
    assert result.metrics["step"] == 2
    for key in ("loss_adv", "loss_surround", "val_surround_l1_hu", "val_wall_dice"):
        assert key in result.metrics, key
    generator, _ = load_generator(f"{result.checkpoint.path}/generator_h2p.pt")
    assert generator(torch.zeros(1, 1, 12, 24, 24)).shape == (1, 1, 12, 24, 24)


# Credentials planted in the logged run's storage options (a local store ignores them).
PLANTED = ("AKIAPLANTEDKEY0001", "planted-secret-0001")
# A single-worker run of 20 steps with validation at each checkpoint (every 5 steps), whose G
# reads a noise field: a resumed run must draw the fields the uninterrupted one drew.
RESUMABLE = ("gan.steps=20", "gan.decay_start=10", "gan.checkpoint_every=5", "gan.log_every=5",
             "data.split_fractions=[0.5,0.5,0]", "gan.val_samples=2", "scaling.num_workers=1",
             "gan.noise_channels=1", "gan.lambda_diversity=0.1")


@pytest.fixture(scope="module")
def logged_run(gan_config_in, ray_cluster, tmp_path_factory):
    """One run with validation, TensorBoard and MLflow (a file store), whose outputs the
    tests below read; it is also the uninterrupted run the resume test compares with."""
    root = tmp_path_factory.mktemp("logged")
    uri = f"file://{root}/mlruns"
    config = gan_config_in(root / "runs", "val", *RESUMABLE, f"logging.mlflow_tracking_uri={uri}",
                           f"storage.storage_options={{key: {PLANTED[0]}, secret: {PLANTED[1]}}}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow-skinny has no database store
        result = fit_gan(config)
    return SimpleNamespace(config=config, result=result, uri=uri,
                           tensorboard=root / "runs" / "val" / "tensorboard")


def test_validation_scores_and_draws_held_out_healthy_samples(logged_run):
    """Shape scores on healthy val slices; translation and realism against real pathological
    val slices, read in rank 0's process."""
    result = logged_run.result
    for key in ("val_surround_l1_hu", "val_change_outside_body_hu", "val_change_in_lung_hu",
                "val_shape_dice", "val_wall_dice", "val_disease_share",
                "val_disease_share_healthy", "val_disease_share_pathological",
                "val_translation", "val_opacity_overlap", "val_opacity_overlap_pathological",
                "val_realism_hu"):
        assert key in result.metrics, key
    for key in ("val_shape_dice", "val_wall_dice", "val_disease_share"):
        assert 0.0 <= result.metrics[key] <= 1.0, key
    assert result.metrics["val_realism_hu"] > 0
    assert Path(result.checkpoint.path, "validation.png").stat().st_size > 1000
    run = Path(result.checkpoint.path).parent
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["best_by"], summary["best_step"]) == ("last checkpoint", 20)
    assert summary["best_metrics"]["val_shape_dice"] == result.metrics["val_shape_dice"]
    assert (run / "curves.png").stat().st_size > 1000


def test_the_exported_generator_is_the_average_of_the_trained_one(logged_run):
    """generator_h2p.pt holds the EMA of G (gan.ema_decay) that the checkpoint's loop state
    carries for a resumed run; it has moved with training but differs from the raw G."""
    folder = Path(logged_run.result.checkpoint.path)
    exported = torch.load(folder / "generator_h2p.pt", weights_only=True)["state_dict"]
    state = torch.load(folder / "state_rank0.pt", weights_only=True)
    assert int(state["ema_g"]["n_averaged"]) == 20
    average = {k.removeprefix("module."): v for k, v in state["ema_g"].items() if k != "n_averaged"}
    raw = {k.removeprefix("g."): v for k, v in engine_weights(folder, "generators").items()
           if k.startswith("g.")}
    torch.manual_seed(logged_run.config.gan.seed)  # the trainer's initial weights
    initial = Generators(logged_run.config).g.state_dict()
    assert exported.keys() == average.keys() == raw.keys()
    assert all(torch.equal(exported[k], average[k]) for k in exported)
    change = {name: sum(float((exported[k] - other[k]).abs().sum()) for k in exported)
              for name, other in (("raw", raw), ("initial", initial))}
    assert change["raw"] > 0 and change["initial"] > 0, change


def test_the_cyclegan_learns(logged_run):
    """Within 20 steps both engines learn: the generators' and the discriminators' objectives
    fall, and the average G changes the band around the lung far less at the end than at the
    first validation (not at every one: the diversity term first pays G for visible change
    that depends on the noise)."""
    metrics = pd.read_csv(Path(logged_run.result.checkpoint.path).parent / "metrics.csv")
    first, last = metrics.iloc[0], metrics.iloc[-1]
    assert last["loss_g"] < 0.95 * first["loss_g"], metrics["loss_g"].tolist()
    assert last["loss_d"] < 0.8 * first["loss_d"], metrics["loss_d"].tolist()
    band = metrics["val_surround_l1_hu"].dropna()
    assert band.iloc[-1] < 0.5 * band.iloc[0], band.tolist()


def test_no_file_of_the_run_holds_its_credentials(logged_run):
    """Checkpoints, exports, configs, metrics, TensorBoard and MLflow: every byte scanned."""
    root = Path(logged_run.result.checkpoint.path).parents[2]
    files = [f for f in root.rglob("*") if f.is_file()]
    assert len(files) > 20
    for file in files:
        data = file.read_bytes()
        assert not any(secret.encode() in data for secret in PLANTED), file
    saved = (Path(logged_run.result.checkpoint.path) / "raylung_config.yaml").read_text()
    assert "key: <redacted>" in saved  # the written config says a value was taken out


def test_mlflow_run_ends_finished_with_the_validation(logged_run, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(logged_run.uri)
    experiment = client.get_experiment_by_name(logged_run.config.logging.mlflow_experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and "val_shape_dice" in run.data.metrics


def test_tensorboard_holds_rank_zero_losses_at_their_steps(logged_run, read_scalars):
    scalars = read_scalars(logged_run.tensorboard)
    assert [step for step, _ in scalars["loss_g"]] == [5, 10, 15, 20]
    assert scalars["loss_g"][-1][1] == pytest.approx(logged_run.result.metrics["loss_g"],
                                                     rel=1e-6)
    assert {"loss_d", "lr", "steps_per_s"} <= scalars.keys()
    assert "step" not in scalars


def test_killed_run_resumes_with_identical_weights(logged_run, gan_config, tmp_path,
                                                   kill_and_rerun, read_scalars,
                                                   assert_same_weights):
    """A run killed after its first checkpoint and rerun ends with the weights of a run that
    never stopped (``logged_run``): same step count, optimiser, LR schedule, image pools and
    data."""
    config = gan_config("resumed", *RESUMABLE, "ray.num_cpus=2")
    stdout = kill_and_rerun("train-gan", config, 20)
    exported = re.search(r"train-gan: step 20 -> generator (\S+)", stdout)
    assert exported, stdout
    points = read_scalars(tmp_path / "runs" / "resumed" / "tensorboard")["loss_g"]
    logged = [step for step, _ in points]
    assert logged == sorted(set(logged)) and logged[-3:] == [10, 15, 20], "one point per step"
    straight = logged_run.result.checkpoint.path
    assert_same_weights(load_generator(f"{straight}/generator_h2p.pt")[0],
                        load_generator(exported[1])[0])


def test_a_killed_worker_restarts_from_the_latest_checkpoint_on_object_storage(
        logged_run, gan_config, small_phantoms, s3_options, fit_killing_a_worker,
        assert_same_weights, tmp_path):
    """Store and run folder on S3 (moto on 127.0.0.1), reached with planted keys: training
    streams from s3:// and checkpoints there. run.max_failures: a worker process killed right
    after the first checkpoint lands is restarted by Ray Train from it; the same fit call ends
    with one metrics row per step and the weights of the local run that never stopped
    (``logged_run``: same phantoms, same specs). With run.keep_checkpoints=2 only the latest 2
    of its 4 checkpoints remain. The keys are in no object the run wrote."""
    from raylung.ingest.run import ingest
    from raylung.train.runner import checkpoint_folder, run_folder

    options = {**s3_options, "key": PLANTED[0], "secret": PLANTED[1]}
    store = "s3://raylung-test/gan-store"
    ingest(str(small_phantoms), store, load_config(None, [f"storage.storage_options={json.dumps(options)}"]),
           progress=False)
    config = gan_config("on-s3", *RESUMABLE, "run.max_failures=1", "run.keep_checkpoints=2",
                        f"data.store={store}",
                        "run.storage_path=s3://raylung-test/runs",
                        f"storage.storage_options={json.dumps(options)}")
    result = fit_killing_a_worker(fit_gan, config)
    assert result.error is None and result.metrics["step"] == 20
    fs = fsspec.filesystem("s3", **options)
    run = run_folder(config)
    assert pd.read_csv(fs.open(f"{run}/metrics.csv"))["step"].tolist() == [5, 10, 15, 20]
    fs.invalidate_cache()  # the killer's polls listed the run folder before it filled
    kept = sorted(p for p in fs.ls(run) if "/checkpoint_" in p and fs.isdir(p))
    assert [torch.load(fs.open(f"{c}/state_rank0.pt"), weights_only=True)["step"]
            for c in kept] == [15, 20]
    export = f"{checkpoint_folder(config, result.checkpoint)}/generator_h2p.pt"
    assert export.startswith("s3://raylung-test/runs/on-s3/checkpoint_")
    fs.get_file(export, str(tmp_path / "generator_h2p.pt"))
    assert_same_weights(load_generator(f"{logged_run.result.checkpoint.path}/generator_h2p.pt")[0],
                        load_generator(tmp_path / "generator_h2p.pt")[0])
    for path in fs.find("raylung-test"):
        data = fs.cat_file(path)
        assert not any(secret.encode() in data for secret in PLANTED), path
