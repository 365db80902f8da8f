"""Adversarial, cycle and identity losses and their weighted sum, against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from raylung.losses.gan import (
    cycle_loss,
    diversity_loss,
    generator_objective,
    identity_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from raylung.losses.surround import surround_l1


def test_lsgan_generator_loss_hand_computed():
    # (0-1)^2, (1-1)^2, (2-1)^2, (3-1)^2 -> (1 + 0 + 1 + 4) / 4
    fake = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    assert lsgan_generator_loss(fake).item() == pytest.approx(1.5)


def test_lsgan_discriminator_loss_hand_computed():
    real = torch.tensor([[[[1.0, 0.0], [1.0, 3.0]]]])  # (0 + 1 + 0 + 4) / 4 = 1.25
    fake = torch.tensor([[[[0.0, 1.0], [-1.0, 2.0]]]])  # (0 + 1 + 1 + 4) / 4 = 1.5
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx(0.5 * (1.25 + 1.5))


def test_perfect_discriminator_has_zero_loss():
    assert lsgan_discriminator_loss(torch.ones(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)).item() == 0


def test_cycle_loss_hand_computed():
    rec = torch.tensor([[[[0.5, -1.0], [0.0, 1.0]]]])
    orig = torch.tensor([[[[0.0, 0.0], [0.0, -1.0]]]])
    assert cycle_loss(rec, orig).item() == pytest.approx((0.5 + 1 + 0 + 2) / 4)


def test_identity_loss_hand_computed():
    same = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]]])
    orig = torch.tensor([[[[1.0, 0.0], [-1.0, 1.0]]]])
    assert identity_loss(same, orig).item() == pytest.approx((0 + 1 + 2 + 0) / 4)


def test_shape_mismatch_raises_instead_of_broadcasting():
    with pytest.raises(ValueError, match=r"same shape, got \(1, 1, 2, 2\) and \(1, 1, 2, 1\)"):
        cycle_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 1))


def test_generator_objective_weights_present_terms():
    terms = {"adv": torch.tensor(2.0), "cyc": torch.tensor(0.5), "surround": torch.tensor(0.25)}
    weights = {"adv": 1.0, "cyc": 10.0, "id": 5.0, "surround": 4.0}
    assert generator_objective(terms, weights).item() == pytest.approx(2 + 5 + 1)


def test_generator_objective_keeps_gradient():
    x = torch.tensor(3.0, requires_grad=True)
    generator_objective({"adv": x * x}, {"adv": 0.5}).backward()
    assert x.grad.item() == pytest.approx(3.0)


def test_term_without_weight_raises():
    with pytest.raises(ValueError, match=r"no weight for loss term\(s\) \['surround'\]"):
        generator_objective({"adv": torch.tensor(1.0), "surround": torch.tensor(1.0)}, {"adv": 1.0})


def test_no_terms_raises():
    with pytest.raises(ValueError, match="at least one loss term"):
        generator_objective({}, {"adv": 1.0})


def test_bf16_images_give_the_fp32_losses_of_the_same_values():
    """On GPUs the networks run in bf16; each loss is still an fp32 mean, here over 2^17 band
    voxels (a bf16 sum rounds such counts to multiples of 512)."""
    rng = torch.Generator().manual_seed(0)
    a, b = (torch.rand(2, 1, 256, 256, generator=rng).bfloat16() for _ in range(2))
    cases = {surround_l1: (a, b, torch.ones(2, 256, 256)), cycle_loss: (a, b),
             identity_loss: (a, b), lsgan_generator_loss: (a,), lsgan_discriminator_loss: (a, b),
             diversity_loss: (a, b, torch.zeros_like(a))}
    for loss, args in cases.items():
        value = loss(*args)
        assert value.dtype == torch.float32, loss.__name__
        assert value.item() == pytest.approx(loss(*(x.float() for x in args)).item(), rel=1e-6)
