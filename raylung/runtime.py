"""Connect to Ray the same way on a laptop, in a test and under ``ray job submit``."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

import ray

from raylung.config import RayConfig
from raylung.console import quiet_driver, ray_logging

# Ray Train's controller takes at most one report per worker per poll, and a worker whose last
# report is still untaken blocks in its next one: at Ray's 2 s default, runs that report more
# often than that wait on the poll (benchmarks/report_poll.py). A missed poll is no failure.
POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
REPORT_POLL_S = 0.2


def connect(cfg: RayConfig, **init_args: Any) -> None:
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
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports free on 127.0.0.1 right now: each stays bound until all
    are drawn, so the system cannot hand one out twice."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def poll_reports_often() -> None:
    """Let the Ray Train runs this process starts take reports every ``REPORT_POLL_S``
    (Ray hands the driver's setting to their controllers); a user's own setting stays."""
    os.environ.setdefault(POLL_ENV, str(REPORT_POLL_S))
