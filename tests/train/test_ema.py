"""The generator's weight average: fp32 whatever the trained copy's dtype (bf16 on GPU)."""

import pytest
import torch

from raylung.train.ema import ema_model


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_average_is_fp32_and_follows_the_warm_up_schedule(dtype):
    trained = torch.nn.Linear(3, 2).to(dtype)
    ema = ema_model(trained, decay=0.5)
    start = trained.weight.detach().float().clone()
    with torch.no_grad():
        trained.weight.add_(1.0)
    ema.update_parameters(trained)  # the first update copies the weights
    ema.update_parameters(trained)  # n = 1: weight 1 - min(0.5, 2 / 11)
    assert ema.module.weight.dtype == torch.float32
    expected = start + 1.0  # both updates saw the same weights
    torch.testing.assert_close(ema.module.weight, trained.weight.float())
    torch.testing.assert_close(ema.module.weight, expected, atol=1e-2, rtol=0)
    with torch.no_grad():
        trained.weight.add_(1.0)
    ema.update_parameters(trained)  # n = 2: the average moves 1 - 3 / 12 of the way
    torch.testing.assert_close(ema.module.weight, trained.weight.float() - 0.25,
                               atol=2e-2, rtol=0)


def test_the_step_count_is_on_the_weights_device():
    """torch keeps AveragedModel's count on the CPU unless told, and would copy it to the
    GPU once per tensor at every update ("meta" stands in for a GPU here)."""
    ema = ema_model(torch.nn.Linear(3, 2, device="meta"), decay=0.5)
    assert ema.n_averaged.device == ema.module.weight.device == torch.device("meta")
