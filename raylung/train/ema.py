"""Exponential moving averages of a network's weights, kept in fp32 beside the trained copy.

A GAN's generator swings from one checkpoint to the next; the average of its recent weights
is the steadier model to export (Karras et al. 2018; Yazici et al. 2019). The segmenter's
pseudo-label teacher is the same average of the student.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_model(module: nn.Module, decay: float) -> AveragedModel:
    """An fp32 EMA of ``module``; ``update_parameters(module)`` after each optimiser step."""
    return AveragedModel(module, multi_avg_fn=warmup_ema(decay)).float()


def warmup_ema(decay: float) -> Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor],
                                          torch.Tensor], None]:
    """EMA update with ``min(decay, (1 + n) / (10 + n))`` after n updates: early averages
    follow the weights closely, so a short run's average is not its initial weights.

    >>> f = warmup_ema(0.99); avg = [torch.zeros(1)]
    >>> f(avg, [torch.ones(1)], torch.tensor(0)); round(avg[0].item(), 3)
    0.9
    """
    def update(averaged: Sequence[torch.Tensor], current: Sequence[torch.Tensor],
               n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(list(averaged), [c.to(a.dtype) for a, c in zip(averaged, current)],
                             weight)
    return update
