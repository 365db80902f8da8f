"""Moving a network to the device a user names: one clear line where CUDA is missing."""

from __future__ import annotations

import pytest
import torch

from raylung.models.placement import to_device, where


def test_a_network_moves_to_the_cpu_as_named():
    assert where(to_device(torch.nn.Linear(1, 1), "cpu"))[0].type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_cuda_device_is_one_line():
    with pytest.raises(ValueError, match=r"^--device cuda:1: no CUDA device is visible here$"):
        to_device(torch.nn.Linear(1, 1), "cuda:1")
