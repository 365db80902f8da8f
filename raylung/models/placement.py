"""Where a network's weights live, so that its inputs follow them: on GPU a bf16 engine runs
beside fp32 weight averages, and each takes inputs in its own dtype."""

from __future__ import annotations

import re

import torch


def where(net: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of ``net``'s first parameter.

    >>> where(torch.nn.Linear(1, 1).to(torch.bfloat16))
    (device(type='cpu'), torch.bfloat16)
    """
    parameter = next(net.parameters())
    return parameter.device, parameter.dtype


def check_device(device: str) -> str:
    """``device`` if it names the CPU or a CUDA device ("cpu", "cuda", "cuda:1"), else one
    clear line (a driver checks the name; only the machine that runs the net can check CUDA)."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ValueError(f"--device {device}: not a device raylung runs on (cpu, cuda or cuda:N)")
    return device


def to_device(net: torch.nn.Module, device: str) -> torch.nn.Module:
    """``net`` on ``device`` ("cpu", "cuda", "cuda:1"); one clear line where CUDA is missing."""
    if check_device(device) != "cpu" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is visible here")
    return net.to(device)
