"""Connect to Ray the same way on a laptop, in a test and under ``ray job submit``."""

from __future__ import annotations

import os

import ray

from raylung.config import RayConfig


def connect(cfg: RayConfig) -> None:
    """Join the cluster named by the config or ``RAY_ADDRESS``; otherwise start a local one."""
    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=cfg.num_cpus, log_to_driver=True)
