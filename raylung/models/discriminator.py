"""The PatchGAN discriminator (70x70 in 2-D with ``n_layers=3``) for 2-D slices and 3-D patches.

MONAI's ``PatchDiscriminator`` with instance norm, whose ``forward`` returns only the final map of
patch logits (no sigmoid: the least-squares GAN loss takes raw scores).
"""

from __future__ import annotations

import torch
from monai.networks.nets import PatchDiscriminator as _MonaiPatchDiscriminator

# kernel 4, padding 1 as in pix2pix: each stride-2 conv halves the size, each stride-1 conv takes 1
_KERNEL = 4


def min_input_size(n_layers: int) -> int:
    """The smallest input size along an axis that leaves a patch map of one.

    >>> min_input_size(3), _patch_map_size(24, 3), _patch_map_size(23, 3)
    (24, 1, 0)
    """
    return 3 * 2**n_layers


def _patch_map_size(size: int, n_layers: int) -> int:
    """Patch-map size along one axis for an input of ``size`` voxels."""
    for _ in range(n_layers):
        size = (size + 2 - _KERNEL) // 2 + 1
    return size - 2


class PatchDiscriminator(_MonaiPatchDiscriminator):
    """PatchGAN: (B, C, *spatial) -> (B, 1, *smaller spatial) of per-patch real/fake logits.

    >>> d = PatchDiscriminator(2, width=8, n_layers=3)
    >>> d(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 1, 2, 2])
    """

    def __init__(self, spatial_dims: int, in_channels: int = 1, width: int = 64,
                 n_layers: int = 3) -> None:
        _check_args(spatial_dims, in_channels, width, n_layers)
        super().__init__(spatial_dims=spatial_dims, channels=width, in_channels=in_channels,
                         out_channels=1, num_layers_d=n_layers, kernel_size=_KERNEL,
                         norm=("INSTANCE", {"affine": True}), padding=1)
        self.spatial_dims = spatial_dims
        self.n_layers = n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """The final patch-logit map; MONAI's list of intermediate features is not kept."""
        self._check_input(x)
        for layer in self.children():
            x = layer(x)
        return x

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(f"expected a (B, C, *spatial) tensor with {self.spatial_dims} spatial "
                             f"dims, got shape {tuple(x.shape)}")
        spatial = tuple(x.shape[2:])
        if min(_patch_map_size(s, self.n_layers) for s in spatial) < 1:
            raise ValueError(f"input spatial size {spatial} is too small for n_layers="
                             f"{self.n_layers}: needs at least {min_input_size(self.n_layers)} "
                             "per axis")


def _check_args(spatial_dims: int, in_channels: int, width: int, n_layers: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    for name, value in (("in_channels", in_channels), ("width", width), ("n_layers", n_layers)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def build_discriminator(spatial_dims: int, in_channels: int = 1, width: int = 64,
                        n_layers: int = 3) -> PatchDiscriminator:
    """The discriminator the GAN trainer uses for either domain."""
    return PatchDiscriminator(spatial_dims, in_channels=in_channels, width=width, n_layers=n_layers)
