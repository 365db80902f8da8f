"""Connect to Ray the same way on a laptop, in a test and under ``ray job submit``."""

from __future__ import annotations

import os
import socket

import ray

from raylung.config import RayConfig
from raylung.console import quiet_driver, ray_logging


def connect(cfg: RayConfig, **init_args) -> None:
    """Join the cluster named by the config or ``RAY_ADDRESS``; otherwise start a local one
    (``init_args`` go to ``ray.init`` then). The workers' own output (Ray's INFO lines among
    it) reaches this console only with ``ray.verbose``; it is always in the session logs."""
    if ray.is_initialized():
        return
    quiet_driver(cfg.verbose)
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    settings = {"log_to_driver": cfg.verbose, "logging_config": ray_logging(cfg.verbose)}
    if address:
        ray.init(address=address, **settings)
        return
    ray.init(num_cpus=cfg.num_cpus, **settings, **init_args)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a dashboard or a test server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
