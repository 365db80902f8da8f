"""`ray job submit` end to end on a two-node cluster of this machine (loopback only)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from raylung.config import load_config
from raylung.runtime import free_ports

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
RAY = str(Path(sys.executable).parent / "ray")


def _ray(*args: str, env: dict[str, str], timeout: float = 180) -> str:
    done = subprocess.run([RAY, *args], env=env, capture_output=True, encoding="utf-8",
                          timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, f"ray {' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def _node_args(temp_dir: str, ports: list[int], cpus: int) -> list[str]:
    """``cpus``, loopback, its own temp dir and four agent ports of its own (the nodes share
    this host)."""
    return [f"--num-cpus={cpus}", "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}",
            f"--dashboard-agent-listen-port={ports[0]}", f"--dashboard-agent-grpc-port={ports[1]}",
            f"--metrics-export-port={ports[2]}", f"--runtime-env-agent-port={ports[3]}",
            "--disable-usage-stats"]


@pytest.fixture
def cluster_nodes():
    """A head that schedules no work (CPU: 0, as in cluster/) and two 1-CPU nodes started
    with ``ray start``, each in its own temp dir, with token authentication (README); yields
    the dashboard (job API) address and the environment, token included, to call it with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               # the job's workers wait on each node's runtime env agent, which on a loaded
               # 2-core machine can take longer than Ray Train's 60 s to start
               RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S="300")
    temp = [tempfile.mkdtemp(prefix="rl-node", dir="/tmp") for _ in range(3)]
    # all at once: ports drawn one by one may repeat (once the head's agent grpc and
    # runtime env agent got the same one, and the head refused to start)
    port, dashboard, *agents = free_ports(14)
    try:
        _ray("start", "--head", f"--port={port}", "--dashboard-host=127.0.0.1",
             f"--dashboard-port={dashboard}", *_node_args(temp[0], agents[:4], 0), env=env)
        for node in (1, 2):
            _ray("start", f"--address=127.0.0.1:{port}",
                 *_node_args(temp[node], agents[4 * node:4 * node + 4], 1), env=env)
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        for folder in temp:  # `ray stop` would also stop the test session's own cluster
            subprocess.run(["pkill", "-9", "-f", folder], check=False)
            shutil.rmtree(folder, ignore_errors=True)


def test_submitted_train_seg_runs_one_worker_on_each_node(cluster_nodes, phantom_store,
                                                          tmp_path):
    """Ray Train places a worker on each 1-CPU node; the test report's readers and writers
    run on the driver's node, the head, which offers no CPU."""
    address, env = cluster_nodes
    runs = tmp_path / "runs"
    overrides = [f"data.store={phantom_store.url}", "data.slice_size=[32,32]",
                 "data.batch_size=2", "data.samples_per_epoch=4",
                 "data.split_fractions=[0.5,0,0.5]", "data.reader_cpus=0.2",
                 "data.read_concurrency=1", "seg.channels=[4,8]", "seg.strides=[2]",
                 "seg.num_res_units=1", "seg.steps=4", "seg.decay_start=2", "seg.val_cases=0",
                 # 0.6 CPU each: only one worker fits on a 1-CPU node
                 "scaling.num_workers=2", "scaling.cpus_per_worker=0.6",
                 "run.name=submitted", f"run.storage_path={runs}"]
    load_config(None, overrides)  # a typo fails here, not in the job
    submitted = _ray("job", "submit", f"--address={address}",
                     "--runtime-env=cluster/runtime_env.yaml", "--",
                     str(Path(sys.executable).parent / "raylung"), "train-seg", *overrides,
                     env=env, timeout=600)
    assert "succeeded" in submitted, submitted[-3000:]
    exported = re.search(r"train-seg: best step 4 .*-> segmenter (\S+)", submitted)
    assert exported and Path(exported[1]).is_file(), submitted[-3000:]
    assert "train-seg: test split, 2 whole scans in their native grid" in submitted, \
        submitted[-3000:]
    job_id = re.search(r"raysubmit_\w+", submitted)[0]
    logs = _ray("job", "logs", f"--address={address}", job_id, env=env)
    assert "train-seg: best step 4" in logs
    workers = json.loads(_ray("list", "actors", f"--address={address}", "--detail",
                              "--filter=class_name=RayTrainWorker", "--format=json", env=env))
    assert len(workers) == 2 and len({w["node_id"] for w in workers}) == 2, workers
