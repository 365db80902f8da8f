"""Exponential moving averages of a network's weights, kept in fp32 beside the trained copy.

A GAN's generator swings from one checkpoint to the next; the average of its recent weights
is the steadier model to export (Karras et al. 2018; Yazici et al. 2019). The segmenter's
pseudo-label teacher is the same average of the student.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_model(module: nn.Module, decay: float) -> AveragedModel:
    """An fp32 EMA of ``module`` (fp32 or bf16); ``update_parameters(module)`` after each
    optimiser step. Its step count lives on the module's device too: torch would copy it
    there once per tensor and step."""
    device = next(module.parameters()).device
    return AveragedModel(module, device=device, avg_fn=warmup_ema(decay)).float()


def warmup_ema(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                                         torch.Tensor]:
    """EMA update with ``min(decay, (1 + n) / (10 + n))`` after n updates: early averages
    follow the weights closely, so a short run's average is not its initial weights. Per
    tensor, since torch's batched form needs the trained weights in the average's dtype; the
    weight stays a tensor on the average's device (a Python number would wait on the GPU once
    per tensor and step).

    >>> f = warmup_ema(0.99)
    >>> round(f(torch.zeros(1), torch.ones(1, dtype=torch.bfloat16), torch.tensor(0)).item(), 3)
    0.9
    """
    def update(averaged: torch.Tensor, current: torch.Tensor,
               n_averaged: torch.Tensor) -> torch.Tensor:
        n = n_averaged.double()
        weight = 1.0 - ((1.0 + n) / (10.0 + n)).clamp(max=decay)
        return torch.lerp(averaged, current.to(averaged.dtype), weight.to(averaged.dtype))
    return update
