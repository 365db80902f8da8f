"""Where a network's weights live, so that its inputs follow them: on GPU a bf16 engine runs
beside fp32 weight averages, and each takes inputs in its own dtype."""

from __future__ import annotations

import torch


def where(net: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of ``net``'s first parameter.

    >>> where(torch.nn.Linear(1, 1).to(torch.bfloat16))
    (device(type='cpu'), torch.bfloat16)
    """
    parameter = next(net.parameters())
    return parameter.device, parameter.dtype
