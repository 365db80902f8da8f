"""cluster/: the scaling and storage files every run mode layers over the same experiment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raylung.config import ConfigError, load_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
OVERLAYS = ["laptop.yaml", "gpu.yaml"]
# What may differ between a laptop, a sweep and a cluster: scaling and storage, nothing else.
SCALING_AND_STORAGE = {
    "ray.address", "ray.num_cpus", "scaling.num_workers", "scaling.use_gpu",
    "scaling.cpus_per_worker", "deepspeed.zero_stage", "deepspeed.bf16", "data.read_concurrency",
    "data.reader_cpus", "seg.synth_actors", "seg.synth_cpus", "seg.synth_gpus", "ingest.chunks",
    "ingest.shards", "run.storage_path", "storage.storage_options"}


def _leaves(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        if isinstance(value, dict) and value and key != "storage_options":
            keys |= _leaves(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlays_set_only_scaling_and_storage(name):
    tree = yaml.safe_load((CLUSTER / name).read_text())
    assert _leaves(tree) <= SCALING_AND_STORAGE, _leaves(tree) - SCALING_AND_STORAGE
    load_config(CLUSTER / name)  # and they are valid configs


def test_overlay_layers_over_an_experiment_key_by_key(tmp_path):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text("gan: {lambda_surround: 7.0}\nscaling: {num_workers: 3}\n"
                          "data: {mode: patch3d}\n")
    laptop = load_config([experiment, CLUSTER / "laptop.yaml"])
    gpu = load_config([experiment, CLUSTER / "gpu.yaml"], ["scaling.num_workers=2"])
    assert laptop.gan.lambda_surround == gpu.gan.lambda_surround == 7.0
    assert laptop.data.mode == gpu.data.mode == "patch3d"
    assert (laptop.scaling.num_workers, laptop.scaling.use_gpu) == (1, False)
    assert (gpu.scaling.num_workers, gpu.scaling.use_gpu, gpu.deepspeed.zero_stage) == (2, True, 2)
    assert gpu.data.reader_cpus == 1.0 and gpu.data.batch_size == laptop.data.batch_size


def test_a_bad_layer_names_the_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scaling: {num_workers: 0}\n")
    with pytest.raises(ConfigError, match=r"laptop.yaml \+ .*bad.yaml: invalid config: "
                                          r"scaling.num_workers"):
        load_config([CLUSTER / "laptop.yaml", bad])


def test_cluster_launcher_config_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((CLUSTER / "aws.yaml").read_text()))
    validate_config(config)
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}
    assert any("pip install" in step for step in config["setup_commands"])


def test_runtime_env_is_valid_and_leaves_local_data_behind():
    from ray.runtime_env import RuntimeEnv

    env = RuntimeEnv(**yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text()))
    assert env["working_dir"] == "." and {".venv", "runs", "demo_out"} <= set(env["excludes"])
