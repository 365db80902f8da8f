"""The linear-decay learning-rate factor: values, LambdaLR use, checkpointing, bad arguments."""

from __future__ import annotations

import pickle

import pytest
import torch

from raylung.train.schedule import linear_decay_lambda


def test_values_at_start_decay_start_midway_and_end():
    factor = linear_decay_lambda(total_steps=200, decay_start=100)
    assert [factor(s) for s in (0, 99, 100, 150, 175, 200, 250)] == [1, 1, 1, 0.5, 0.25, 0, 0]


def test_decay_from_step_zero():
    factor = linear_decay_lambda(total_steps=4, decay_start=0)
    assert [factor(s) for s in range(5)] == [1, 0.75, 0.5, 0.25, 0]


def test_no_decay_when_decay_start_is_total_steps():
    factor = linear_decay_lambda(total_steps=10, decay_start=10)
    assert (factor(9), factor(10)) == (1.0, 0.0)


def test_drives_lambda_lr():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay_lambda(4, 2))
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.2, 0.2, 0.2, 0.1, 0.0])


def test_is_picklable_and_saved_by_lambda_lr():
    factor = pickle.loads(pickle.dumps(linear_decay_lambda(10, 4)))
    assert factor(7) == pytest.approx(0.5)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    state = torch.optim.lr_scheduler.LambdaLR(optimizer, factor).state_dict()
    assert state["lr_lambdas"] == [{"total_steps": 10, "decay_start": 4}]


@pytest.mark.parametrize(("total", "start", "message"), [
    (10, -1, r"decay_start must be in \[0, total_steps=10\], got -1"),
    (10, 11, r"decay_start must be in \[0, total_steps=10\], got 11"),
    (0, 0, "total_steps must be >= 1, got 0"),
])
def test_bad_arguments_raise(total, start, message):
    with pytest.raises(ValueError, match=message):
        linear_decay_lambda(total, start)
