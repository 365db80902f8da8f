"""The PatchGAN discriminator: a map of patch logits for 2-D and 3-D, instance norm only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from raylung.models.discriminator import PatchDiscriminator, build_discriminator


def test_2d_returns_patch_map():
    d = build_discriminator(2, width=4, n_layers=3)
    # 64 -> 32 -> 16 -> 8 by the stride-2 convs, minus 1 for each of the two stride-1 convs
    assert d(torch.randn(2, 1, 64, 64)).shape == (2, 1, 6, 6)


def test_3d_returns_patch_map():
    d = build_discriminator(3, width=4, n_layers=2)
    assert d(torch.randn(1, 1, 16, 16, 16)).shape == (1, 1, 2, 2, 2)


def test_default_2d_map_of_a_256_slice():
    # the 70x70 PatchGAN of pix2pix / CycleGAN gives 30x30 logits for 256x256
    d = build_discriminator(2)
    assert d(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 30, 30)


def test_output_is_raw_logits_not_a_list():
    out = build_discriminator(2, width=4, n_layers=1)(torch.randn(1, 1, 8, 8))
    assert isinstance(out, torch.Tensor)


def test_in_channels():
    d = build_discriminator(2, in_channels=2, width=4, n_layers=1)
    assert d(torch.randn(1, 2, 8, 8)).shape == (1, 1, 2, 2)


def test_no_batch_norm_and_instance_norm_is_affine():
    modules = list(build_discriminator(3, width=4).modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules)
    norms = [m for m in modules if isinstance(m, nn.modules.instancenorm._InstanceNorm)]
    assert norms and all(m.affine for m in norms)


def test_smallest_input_gives_one_patch_and_smaller_raises():
    d = build_discriminator(2, width=4, n_layers=2)
    assert d(torch.randn(1, 1, 12, 12)).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"\(11, 12\) is too small .* at least 12 per axis"):
        d(torch.randn(1, 1, 11, 12))


def test_wrong_number_of_dims_raises():
    with pytest.raises(ValueError, match="with 2 spatial dims"):
        build_discriminator(2, width=4)(torch.zeros(1, 1, 32, 32, 32))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"spatial_dims": 4}, "spatial_dims must be 2 or 3, got 4"),
    ({"spatial_dims": 2, "width": 0}, "width must be >= 1, got 0"),
    ({"spatial_dims": 2, "n_layers": 0}, "n_layers must be >= 1, got 0"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PatchDiscriminator(**kwargs)
