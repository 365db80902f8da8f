"""cluster/: the scaling and storage files every run mode layers over the same experiment."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raylung.config import SITE_KEYS, ConfigError, load_config
from raylung.train.runner import worker_resources

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
OVERLAYS = ["laptop.yaml", "gpu.yaml"]


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
    assert _leaves(tree) <= SITE_KEYS, _leaves(tree) - SITE_KEYS
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


def test_a_bad_value_names_the_layer_that_set_it(tmp_path):
    """Of an experiment file and a cluster/ file, the one that set the bad key; a key given
    on the command line, the command line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("scaling: {num_workers: 0}\n")
    with pytest.raises(ConfigError, match=r"^[^+]*bad.yaml: invalid config: scaling.num_workers"):
        load_config([CLUSTER / "laptop.yaml", bad])
    with pytest.raises(ConfigError, match=r"^command line: invalid config: gan.lambda_srround: "
                                          r"unknown key \(gan has: width,"):
        load_config([bad, CLUSTER / "laptop.yaml"], ["gan.lambda_srround=1"])


def test_cluster_launcher_config_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((CLUSTER / "aws.yaml").read_text()))
    validate_config(config)
    assert config["available_node_types"][config["head_node_type"]]["resources"] == {"CPU": 0}


def test_cluster_launcher_nodes_run_the_locked_ray_and_install_from_the_checkout():
    """Ray's image of the locked Ray and Python; setup.sh --node from the mounted checkout
    (CUDA torch first, then raylung held to the lock); the head's boto3 held to the lock."""
    import ray

    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    lock = (CLUSTER.parent / "requirements.lock").read_text()
    python = lock.split("# python: ")[1].split()[0].replace(".", "")
    assert config["docker"]["image"] == f"rayproject/ray:{ray.__version__}-py{python}-gpu"
    (checkout,) = [path for path, source in config["file_mounts"].items() if source == "."]
    assert config["setup_commands"] == [f"bash {checkout}/scripts/setup.sh --node"]
    assert f"-c {checkout}/requirements.lock boto3" in " ".join(config["head_setup_commands"])
    assert "boto3==" in lock
    for node in config["available_node_types"].values():
        assert node["node_config"]["ImageId"].startswith("resolve:ssm:/aws/service/deeplearning/")


def test_cluster_launcher_keeps_the_dashboard_and_job_api_on_the_head():
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    start = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in start and "--dashboard-host=127.0.0.1" in start


def test_kuberay_cluster_holds_the_gpu_layout_of_gpu_yaml():
    """The pod of the GPU group fits cluster/gpu.yaml's training job: its GPUs, and CPUs for
    the workers, each with its readers of one stream and its GAN actors; token auth; the
    locked Ray."""
    import ray

    cluster = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    gpu = load_config(CLUSTER / "gpu.yaml")
    spec = cluster["spec"]
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert spec["rayVersion"] == ray.__version__ and spec["authOptions"]["mode"] == "token"
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (group,) = spec["workerGroupSpecs"]
    pod = group["template"]["spec"]["containers"][0]["resources"]
    assert int(group["rayStartParams"]["num-gpus"]) == gpu.scaling.num_workers
    assert pod["limits"]["nvidia.com/gpu"] == group["rayStartParams"]["num-gpus"]
    for run, (cpus, gpus) in worker_resources(gpu).items():  # the GAN reads two streams
        assert gpu.scaling.num_workers * cpus <= int(group["rayStartParams"]["num-cpus"]) \
            <= int(pod["limits"]["cpu"]), run
        assert gpu.scaling.num_workers * gpus <= int(group["rayStartParams"]["num-gpus"]), run


def test_kuberay_pods_read_the_scans_at_one_path():
    """ingest records each scan's path, and train-seg's driver (on the head) and workers read
    the scans there: every pod mounts the same claim at the same path."""
    spec = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())["spec"]
    pods = [spec["headGroupSpec"]["template"]["spec"]]
    pods += [group["template"]["spec"] for group in spec["workerGroupSpecs"]]
    mounts = []
    for pod in pods:
        claims = {volume["name"]: volume["persistentVolumeClaim"]["claimName"]
                  for volume in pod.get("volumes", []) if "persistentVolumeClaim" in volume}
        (container,) = pod["containers"]
        mounts += [(claims[mount["name"]], mount["mountPath"])
                   for mount in container.get("volumeMounts", []) if mount["name"] in claims]
    assert len(mounts) == len(pods) and len(set(mounts)) == 1, mounts


def test_one_node_image_for_the_launcher_and_kuberay():
    """cluster/Dockerfile (KubeRay's IMAGE) starts from aws.yaml's image, installs as its
    nodes do, and puts the checkout where the RayJob reads its configs."""
    steps = (CLUSTER / "Dockerfile").read_text().splitlines()
    aws = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    checkout = next(line.split()[-1] for line in steps if line.startswith("COPY"))
    assert f"FROM {aws['docker']['image']}" in steps
    assert any(line.startswith("RUN") and f"{checkout}/scripts/setup.sh --node" in line
               for line in steps)
    command = job["spec"]["entrypoint"].split()
    assert all(command[i + 1].startswith(f"{checkout}/")
               for i, word in enumerate(command) if word == "--config")


def test_kuberay_job_runs_train_seg_with_gpu_yaml_on_that_cluster():
    cluster = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    command = job["spec"]["entrypoint"].split()
    assert command[:2] == ["raylung", "train-seg"]
    configs = [command[i + 1] for i, word in enumerate(command) if word == "--config"]
    assert configs[-1].endswith("cluster/gpu.yaml") and len(configs) == 2


def test_runtime_env_is_valid_and_leaves_local_data_behind():
    from ray.runtime_env import RuntimeEnv

    env = RuntimeEnv(**yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text()))
    assert env["working_dir"] == "." and {".venv", "runs", "sweeps", "stream_out",
                                          "demo_out"} <= set(env["excludes"])


def test_cluster_jobs_wait_for_the_nodes_an_autoscaler_adds():
    """Ray Train retries a worker group that has not started after its timeout (60 s by
    default) 3 times (train/runner.py), then fails the run: cluster jobs wait minutes."""
    from ray.train.v2._internal.constants import WORKER_GROUP_START_TIMEOUT_S_ENV_VAR

    submit = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())["env_vars"]
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    kuberay = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    for env in (submit, kuberay):
        assert float(env[WORKER_GROUP_START_TIMEOUT_S_ENV_VAR]) >= 900
