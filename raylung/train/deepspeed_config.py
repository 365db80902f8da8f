"""DeepSpeed's JSON config, derived from raylung's own config (never written by hand).

On CPU raylung trains in fp32 with gloo and ``DS_ACCELERATOR=cpu``; on GPU bf16 is on unless
``deepspeed.bf16=false``. The optimiser is Adam as CycleGAN prescribes (torch's implementation,
so the same config runs on CPU and GPU). ZeRO 1 and 2 gather gradients in a buffer of
``reduce_bucket_size`` elements, allocated at every step: DeepSpeed's default of 5e8 is 1 GB in bf16
(2 GB in fp32) per engine for networks of a few million weights, so it is the engine's own size.
"""

from __future__ import annotations

import os
from typing import Any

from raylung.config import Config

CPU_ENV = {"DS_ACCELERATOR": "cpu"}
DEEPSPEED_BUCKET = 500_000_000  # DeepSpeed's default reduce_bucket_size, kept for larger networks


def deepspeed_config(config: Config, lr: float, betas: tuple[float, float],
                     weights: int) -> dict[str, Any]:
    """The config of one engine of this job (the GAN's generators or discriminators, or the
    segmenter), training ``weights`` parameters."""
    ds = config.deepspeed
    return {
        "train_micro_batch_size_per_gpu": config.data.batch_size,
        "gradient_accumulation_steps": ds.grad_accum,
        "gradient_clipping": ds.grad_clip,
        "zero_optimization": {"stage": ds.zero_stage,
                              "reduce_bucket_size": max(1, min(weights, DEEPSPEED_BUCKET))},
        "bf16": {"enabled": bool(config.scaling.use_gpu and ds.bf16)},
        # adam_w_mode: DeepSpeed's "Adam" is AdamW with decay 0.01 unless told otherwise
        "optimizer": {"type": "Adam",
                      "params": {"lr": lr, "betas": list(betas), "torch_adam": True,
                                 "adam_w_mode": False, "weight_decay": 0.0}},
        "steps_per_print": 10**9,  # raylung reports its own metrics
        "wall_clock_breakdown": False,
    }


def worker_env(use_gpu: bool) -> dict[str, str]:
    """Environment every Ray Train worker needs before it imports deepspeed."""
    return {} if use_gpu else dict(CPU_ENV)


def select_accelerator(use_gpu: bool) -> None:
    """Point DeepSpeed at the CPU when no GPU is used (must run before ``import deepspeed``)."""
    for key, value in worker_env(use_gpu).items():
        os.environ.setdefault(key, value)
