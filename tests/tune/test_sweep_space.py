"""Sweep files: validation in one line per problem, the Ray Tune space, the shipped spaces."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.tune.search.sample import Categorical, Float, LogUniform

from raylung.cli import main
from raylung.config import ConfigError, dump_config, load_config
from raylung.tune.space import base_values, load_sweep, param_space, read_sweep, trial_config
from raylung.tune.objectives import objective_of
from raylung.tune.sweep import _check_resources, check_sweep

SPACES = Path(__file__).parents[2] / "tune_spaces"


def _write(tmp_path: Path, space: dict, **sections) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"space": space, **sections}))
    return path


@pytest.mark.parametrize("entry, problem", [
    ({"gan.lambda_foo": {"uniform": [0, 1]}}, "space.gan.lambda_foo: unknown config field (gan"),
    ({"gan": {"uniform": [0, 1]}}, "space.gan: is a section"),
    ({"run.name": {"choice": ["a"]}}, "space.run.name: not searchable"),
    ({"gan.lambda_adv": {"normal": [0, 1]}}, "space.gan.lambda_adv: unknown distribution 'normal'"),
    ({"gan.lambda_adv": [0.1, 1]}, "space.gan.lambda_adv: expected one distribution"),
    ({"gan.width": {"uniform": [4, 8]}}, "space.gan.width: uniform needs a float field"),
    ({"gan.lambda_adv": {"uniform": [3, 1]}}, "space.gan.lambda_adv: uniform needs low < high"),
    ({"gan.lambda_adv": {"loguniform": [0, 1]}}, "space.gan.lambda_adv: loguniform needs 0 < low"),
    ({"gan.lr": {"loguniform": ["small", 0.001]}}, "space.gan.lr: loguniform needs numbers"),
    ({"gan.lambda_adv": {"uniform": [-1, 1]}}, "space.gan.lambda_adv: -1 is not valid here"),
    ({"gan.decay_start": {"grid": [1, 500]}}, "space.gan.decay_start: 500 is not valid here"),
])
def test_a_bad_entry_is_one_line_naming_file_and_field(tmp_path, entry, problem):
    path = _write(tmp_path, entry)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert str(err.value).startswith(f"{path}: {problem}")
    assert "\n" not in str(err.value)


def test_the_cli_prints_the_problem_as_one_line(tmp_path, capsys):
    path = _write(tmp_path, {"gan.lambda_foo": {"uniform": [0, 1]}})
    assert main(["tune", "--space", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"raylung tune: error: {path}: space.gan.lambda_foo: unknown")
    assert len(err.splitlines()) == 1


def test_a_missing_space_and_a_bad_base_section_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="space: missing"):
        load_sweep(_write(tmp_path, {}))
    space = _write(tmp_path, {"gan.lambda_adv": {"uniform": [0, 1]}}, gan={"steps": 0})
    with pytest.raises(ConfigError, match=r"space.yaml: invalid config: gan.steps"):
        load_sweep(space)
    base = tmp_path / "job.yaml"
    base.write_text("gan: {width: 0}\n")
    with pytest.raises(ConfigError, match=r"space.yaml over .*job.yaml: invalid config: gan"):
        load_sweep(space, base)


def test_sections_override_the_base_file_and_key_values_override_both(tmp_path):
    base = tmp_path / "job.yaml"
    base.write_text(yaml.safe_dump({"gan": {"steps": 50, "decay_start": 10, "width": 8},
                                   "data": {"store": "s"}}))
    path = _write(tmp_path, {"gan.lambda_adv": {"uniform": [0, 1]}}, gan={"width": 16})
    sweep = load_sweep(path, base, ["gan.steps=70"])
    assert (sweep.config.gan.steps, sweep.config.gan.width) == (70, 16)
    assert Path(sweep.config.data.store).is_absolute()  # trials run in other folders


def test_a_cluster_files_scaling_and_storage_win_over_the_sweep_files(tmp_path):
    """The shipped sweeps set a CPU scaling and a local folder; cluster/gpu.yaml must still
    put the trials on GPUs and their runs on S3 (other sections: the sweep file wins)."""
    gpu = load_config(Path(__file__).parents[2] / "cluster" / "gpu.yaml")
    sweep = load_sweep(Path(__file__).parents[2] / "tune_spaces" / "shape_aware.yaml",
                       Path(__file__).parents[2] / "cluster" / "gpu.yaml", ["scaling.num_workers=2"])
    assert sweep.config.scaling.use_gpu and sweep.config.scaling.num_workers == 2
    assert sweep.config.scaling.gpus_per_worker == gpu.scaling.gpus_per_worker
    assert sweep.config.run.storage_path == gpu.run.storage_path
    assert sweep.config.run.name == "shape_aware" and sweep.config.tune.num_samples == 32
    laptop = load_sweep(Path(__file__).parents[2] / "tune_spaces" / "shape_aware.yaml")
    assert not laptop.config.scaling.use_gpu and laptop.config.run.storage_path.endswith("sweeps")
    demo = load_sweep(Path(__file__).parents[2] / "tune_spaces" / "demo.yaml",
                      Path(__file__).parents[2] / "cluster" / "gpu.yaml")
    assert demo.config.data.reader_cpus == gpu.data.reader_cpus  # the demo sweep sets 0.1
    assert demo.config.data.slice_size == (64, 64)               # not a site key: the sweep's
    with pytest.raises(ConfigError, match=r"^run.storage_path: a sweep folder must be a path, "
                                          r"not a URL; on a cluster, one every node mounts"):
        check_sweep(sweep)  # README: --config cluster/gpu.yaml run.storage_path=/shared/sweeps


def test_a_runs_resolved_config_is_a_base_the_sweep_file_overrides(tmp_path):
    """raylung_config.yaml sets every key, scaling and storage too: it is an experiment, so
    the sweep keeps its own folder and per-trial scaling (and --resume sweeps/NAME holds)."""
    resolved = tmp_path / "raylung_config.yaml"
    resolved.write_text(dump_config(load_config(None, ["gan.width=16", "data.store=s"])))
    sweep = load_sweep(Path(__file__).parents[2] / "tune_spaces" / "shape_aware.yaml", resolved)
    assert sweep.config.gan.width == 16
    assert sweep.config.scaling.cpus_per_worker == 0.5
    assert sweep.folder == Path("sweeps/shape_aware").resolve()


def test_param_space_maps_each_distribution(tmp_path):
    sweep = load_sweep(_write(tmp_path, {
        "gan.lambda_surround": {"loguniform": [1, 100]}, "gan.lambda_adv": {"uniform": [0, 2]},
        "gan.width": {"choice": [4, 8]}, "gan.seed": {"grid": [0, 1]}}))
    space = param_space(sweep)
    assert isinstance(space["gan.lambda_surround"].get_sampler(), LogUniform)
    assert (space["gan.lambda_adv"].lower, space["gan.lambda_adv"].upper) == (0, 2)
    assert isinstance(space["gan.lambda_adv"], Float)
    assert isinstance(space["gan.width"], Categorical)
    assert space["gan.seed"] == {"grid_search": [0, 1]}
    assert base_values(sweep) == {"gan.lambda_surround": 12.0, "gan.lambda_adv": 1.0,
                                  "gan.width": 32, "gan.seed": 0}


def test_exponents_in_a_space_are_numbers(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("space:\n  gan.lr: {loguniform: [5e-5, 1e-3]}\n")
    lr = param_space(load_sweep(path))["gan.lr"]
    assert (lr.lower, lr.upper) == (5e-5, 1e-3)


def test_trial_config_sets_the_sampled_values(tmp_path):
    sweep = load_sweep(_write(tmp_path, {"gan.lambda_adv": {"uniform": [0, 2]}}))
    config = trial_config(sweep.config, {"gan.lambda_adv": 0.5, "data.augment.flip_prob": 0.0})
    assert (config.gan.lambda_adv, config.data.augment.flip_prob) == (0.5, 0.0)


def test_the_saved_sweep_reads_back_from_its_folder(tmp_path):
    """Text that YAML could read as a number (2e5) stays text; a dotted key sets its field."""
    path = tmp_path / "space.yaml"
    path.write_text("space: {gan.lambda_adv: {uniform: [0, 2]}}\n"
                    "logging: {mlflow_experiment: '2e5'}\ngan.steps: 300\n")
    sweep = load_sweep(path, overrides=[f"run.storage_path={tmp_path / 'sweeps'}", "run.name=s1"])
    assert (sweep.config.logging.mlflow_experiment, sweep.config.gan.steps) == ("2e5", 300)
    sweep.folder.mkdir(parents=True)
    (sweep.folder / "sweep.yaml").write_text(sweep.to_yaml())
    moved = tmp_path / "moved"
    sweep.folder.rename(moved)
    again = read_sweep(moved, ["ray.num_cpus=2"])
    assert again.space == sweep.space and again.config.logging.mlflow_experiment == "2e5"
    assert again.folder == moved.resolve()
    assert again.config.ray.num_cpus == 2


def test_the_sweep_file_holds_no_credentials_and_reads_back_without_them(tmp_path):
    """Keys and URL passwords are redacted in sweep.yaml; a resumed sweep takes them from
    the environment, as the first one could have."""
    sweep = load_sweep(_write(tmp_path, {"gan.lambda_adv": {"uniform": [0, 2]}}), overrides=[
        "storage.storage_options={key: AKIAPLANTED, secret: planted-secret, anon: false}",
        "logging.mlflow_tracking_uri=https://me:planted-password@mlflow.example:5000",
        f"run.storage_path={tmp_path / 'sweeps'}"])
    text = sweep.to_yaml()
    assert not any(s in text for s in ("AKIAPLANTED", "planted-secret", "planted-password"))
    assert "key: <redacted>" in text and "me:<redacted>@mlflow.example" in text
    sweep.folder.mkdir(parents=True)
    (sweep.folder / "sweep.yaml").write_text(text)
    again = read_sweep(sweep.folder)
    assert again.config.storage.storage_options == {"anon": False}
    assert again.config.logging.mlflow_tracking_uri == "https://me@mlflow.example:5000"


@pytest.mark.parametrize("name", ["demo", "shape_aware", "full"])
def test_shipped_spaces_validate(name):
    sweep = load_sweep(SPACES / f"{name}.yaml", None, ["data.store=store"])
    assert {"gan.lambda_surround", "gan.lambda_adv"} <= set(sweep.space)
    assert sweep.config.run.name == name


SMALL_READERS = ["data.read_concurrency=1", "data.reader_cpus=0.1"]


@pytest.mark.parametrize("scaling, problem", [
    (["scaling.use_gpu=true", "scaling.gpus_per_worker=0.5"], "GAN run needs 0.5 GPUs"),
    (["scaling.num_workers=4"], "GAN run needs 5.3 CPUs"),
    (["tune.objective=downstream", "seg.synth_cpus=0.3", "seg.synth_gpus=0.25"],
     r"U-Net run needs 0.25 GPUs \(driver, workers, crop readers and GAN actors\)"),
    (["tune.objective=downstream", "seg.synth_actors=2"], "U-Net run needs 3.6 CPUs"),
    (["data.read_concurrency=2", "data.reader_cpus=1"], "GAN run needs 5.5 CPUs")])
def test_a_trial_the_cluster_cannot_place_is_refused(ray_cluster, scaling, problem):
    """The test cluster has 2 CPUs and no GPU; the driver's own 0.5 CPU counts too, each
    worker's crop readers (two streams in a GAN run, 0.1 CPU each here), and a downstream
    trial's GAN actors (1 CPU each by default) beside its one worker."""
    config = load_config(None, ["tune.driver_cpus=0.5", *SMALL_READERS, *scaling])
    with pytest.raises(ConfigError, match=rf"^scaling: a trial's {problem}"):
        _check_resources(config, objective_of(config.tune))


def test_a_trial_that_fits_the_cluster_is_placed(ray_cluster):
    config = load_config(None, ["tune.driver_cpus=0.5", "scaling.cpus_per_worker=1",
                                "tune.objective=downstream", "seg.synth_cpus=0.3",
                                *SMALL_READERS])
    _check_resources(config, objective_of(config.tune))
