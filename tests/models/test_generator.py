"""The ResNet generator: same-size output in [-1, 1], 2-D and 3-D, instance norm, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from raylung.models.generator import ResnetGenerator, smooth_noise


def _tiny(spatial_dims: int, **kwargs) -> ResnetGenerator:
    torch.manual_seed(0)
    return ResnetGenerator(spatial_dims, width=4, n_blocks=1, **kwargs)


def test_2d_output_has_input_shape():
    assert _tiny(2)(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_3d_output_has_input_shape():
    assert _tiny(3)(torch.randn(1, 1, 16, 16, 16)).shape == (1, 1, 16, 16, 16)


def test_channels_follow_in_and_out_channels():
    g = _tiny(2, in_channels=3, out_channels=2)
    assert g(torch.randn(2, 3, 16, 16)).shape == (2, 2, 16, 16)


def test_non_square_input_keeps_shape():
    assert _tiny(2)(torch.randn(1, 1, 16, 24)).shape == (1, 1, 16, 24)


def test_learns_to_paint_a_patch_at_the_wall():
    """A few hundred Adam steps fit a local translation like the disease G must learn: a dense
    patch on the left wall of each image, nothing changed elsewhere."""
    torch.manual_seed(0)
    x = torch.rand(8, 1, 16, 16) * 0.4 - 0.9
    target = x.clone()
    target[:, :, 6:10, :3] = 0.5
    g = _tiny(2)
    optimizer = torch.optim.Adam(g.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        optimizer.zero_grad()
        loss = (g(x) - target).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    out = g(x).detach()
    assert losses[-1] < losses[0] / 4, losses[::50]
    assert out[:, :, 6:10, :3].mean() > 0.2  # the patch is painted, the rest stays dark
    assert out[:, :, :, 6:].mean() < -0.4


def test_no_batch_norm_and_instance_norm_is_affine():
    modules = list(_tiny(3).modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules)
    norms = [m for m in modules if isinstance(m, nn.modules.instancenorm._InstanceNorm)]
    assert norms and all(m.affine for m in norms)


def test_gradient_reaches_the_input():
    x = torch.randn(1, 1, 16, 16, requires_grad=True)
    _tiny(2)(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_non_divisible_size_names_size_and_divisor():
    with pytest.raises(ValueError, match=r"\(30, 32\) must be divisible by 4"):
        _tiny(2)(torch.zeros(1, 1, 30, 32))


def test_too_small_input_raises():
    with pytest.raises(ValueError, match="at least 8 per axis"):
        _tiny(2)(torch.zeros(1, 1, 4, 4))


def test_wrong_number_of_dims_raises():
    with pytest.raises(ValueError, match="with 3 spatial dims"):
        _tiny(3)(torch.zeros(1, 1, 16, 16))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"spatial_dims": 1}, "spatial_dims must be 2 or 3, got 1"),
    ({"spatial_dims": 2, "width": 0}, "width must be >= 1, got 0"),
    ({"spatial_dims": 2, "in_channels": 0}, "in_channels must be >= 1, got 0"),
    ({"spatial_dims": 2, "n_blocks": -1}, "n_blocks must be >= 0, got -1"),
    ({"spatial_dims": 2, "n_down": -1}, "n_down must be >= 0, got -1"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResnetGenerator(**kwargs)


def test_residual_generator_starts_as_identity_and_learns_a_bounded_change():
    g = ResnetGenerator(2, width=4, n_blocks=1, residual=True)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    assert torch.equal(g(x), x)
    optimizer = torch.optim.Adam(g.parameters(), lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        (g(x) - 1).abs().mean().backward()      # pull everything to +1
        optimizer.step()
    out = g(x)
    assert not torch.equal(out, x) and out.max() <= 1.0 and out.min() >= -1.0


def test_residual_generator_needs_matching_channels():
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        ResnetGenerator(2, in_channels=3, out_channels=1, residual=True)


def test_noise_channels_make_one_input_give_many_outputs():
    g = ResnetGenerator(2, width=4, n_blocks=1, residual=True, noise_channels=1)
    torch.nn.init.normal_(g.net[-2].weight, std=0.1)  # a trained G: its change reads the noise
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    noise = smooth_noise(x, 1)
    assert noise.shape == (2, 1, 16, 16)
    assert torch.equal(g(x, noise), g(x, noise))
    assert not torch.allclose(g(x), g(x))
    assert ResnetGenerator(2, width=4, n_blocks=1, residual=True, noise_channels=1)(x).equal(x)
