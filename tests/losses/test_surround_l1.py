"""Surrounding L1: zero for the identity, blind to the lung, a per-voxel mean over the band."""

from __future__ import annotations

import pytest
import torch

from raylung.losses.surround import surround_l1

# a 2x2 image: lung on the right column, band on the left column
BAND = torch.tensor([[[1, 0], [1, 0]]], dtype=torch.uint8)


def test_identity_translation_gives_exactly_zero():
    h = torch.randn(2, 1, 8, 8)
    band = (torch.rand(2, 8, 8) > 0.5).to(torch.uint8)
    assert surround_l1(h.clone(), h, band).item() == 0.0


def test_hand_computed_value():
    h = torch.zeros(1, 1, 2, 2)
    g = torch.tensor([[[[0.5, 9.0], [-1.5, -9.0]]]])
    # band voxels change by 0.5 and 1.5; the lung column is ignored
    assert surround_l1(g, h, BAND).item() == pytest.approx(1.0)


def test_band_with_channel_axis_gives_same_value():
    h = torch.zeros(1, 1, 2, 2)
    g = torch.tensor([[[[0.5, 9.0], [-1.5, -9.0]]]])
    assert surround_l1(g, h, BAND.unsqueeze(1)).item() == pytest.approx(1.0)


def test_multichannel_is_mean_per_voxel_and_channel():
    h = torch.zeros(1, 2, 2, 2)
    g = torch.tensor([[[[1.0, 7.0], [1.0, 7.0]], [[3.0, 7.0], [3.0, 7.0]]]])
    # band sum 2, two channels: (1 + 1 + 3 + 3) / (2 * 2)
    assert surround_l1(g, h, BAND).item() == pytest.approx(2.0)


def test_gradient_is_zero_in_lung_and_non_zero_in_band():
    h = torch.zeros(1, 1, 2, 2)
    g = torch.tensor([[[[0.5, 9.0], [-1.5, -9.0]]]], requires_grad=True)
    surround_l1(g, h, BAND).backward()
    # d/dg of |g| / 2 is sign(g) / 2 in the band, exactly 0 in the lung
    assert g.grad.tolist() == [[[[0.5, 0.0], [-0.5, 0.0]]]]


def test_empty_band_gives_zero_not_nan():
    loss = surround_l1(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2))
    assert loss.item() == 0.0


def test_band_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"surround must have shape .* got \(1, 3, 3\)"):
        surround_l1(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.zeros(1, 3, 3))


def test_image_shape_mismatch_raises():
    with pytest.raises(ValueError, match="images must have the same shape"):
        surround_l1(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2), BAND)
