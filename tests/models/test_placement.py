"""Moving a network to the device a user names: one clear line for a name that is no device
or where CUDA is missing."""

from __future__ import annotations

import pytest
import torch

from raylung.models.placement import to_device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:one", "mps", "cpu:0 "])
def test_a_name_that_is_no_device_is_one_line(device):
    with pytest.raises(ValueError, match=r"^--device .*: not a device raylung runs on "
                                         r"\(cpu, cuda or cuda:N\)$"):
        to_device(torch.nn.Linear(1, 1), device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_cuda_device_is_one_line():
    with pytest.raises(ValueError, match=r"^--device cuda:1: no CUDA device is visible here$"):
        to_device(torch.nn.Linear(1, 1), "cuda:1")
