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


def to_device(net: torch.nn.Module, device: str) -> torch.nn.Module:
    """``net`` on ``device`` ("cpu", "cuda", "cuda:1"); one clear line where CUDA is missing."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is visible here")
    return net.to(device)
