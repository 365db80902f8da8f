"""DeepSpeed engines of a Ray Train worker: process group, then one engine per trained module."""

from __future__ import annotations

from typing import Any

import torch

from raylung.config import Config
from raylung.train.deepspeed_config import deepspeed_config, select_accelerator
from raylung.train.schedule import linear_decay_lambda

SHM_COMM_OP = "deepspeed_shm_comm"


def init_distributed(config: Config) -> None:
    """Join the workers' process group: NCCL on GPU, gloo on CPU (with ``DS_ACCELERATOR=cpu``)."""
    select_accelerator(config.scaling.use_gpu)
    import deepspeed  # after select_accelerator: DeepSpeed picks its accelerator on import

    if not config.scaling.use_gpu:
        # DeepSpeed would JIT-compile its shared-memory all-reduce here (35 s to 2 min of C++
        # per new install and node), which only inference calls; training reduces with gloo.
        deepspeed.ops.__compatible_ops__[SHM_COMM_OP] = False
    deepspeed.init_distributed(dist_backend="nccl" if config.scaling.use_gpu else "gloo")


def build_engine(module: torch.nn.Module, config: Config, lr: float, betas: tuple[float, float],
                 steps: int, decay_start: int) -> Any:
    """A DeepSpeed engine around ``module``: Adam, constant LR then linear decay to 0 at ``steps``.

    ``steps`` count micro-batches (``engine.step()`` calls); DeepSpeed steps the optimiser and
    the LR schedule once per ``deepspeed.grad_accum`` of them, so the schedule counts those."""
    import deepspeed

    accum = config.deepspeed.grad_accum
    schedule = linear_decay_lambda(max(1, steps // accum), decay_start // accum)
    trained = [p for p in module.parameters() if p.requires_grad]
    engine, *_ = deepspeed.initialize(
        model=module, model_parameters=trained,
        config=deepspeed_config(config, lr, betas, sum(p.numel() for p in trained)),
        lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(optimizer, schedule))
    return engine
