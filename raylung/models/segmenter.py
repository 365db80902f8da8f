"""The lung segmenter: MONAI's residual U-Net, 2-D for slices and 3-D for patches.

Two output channels (background, lung) of logits; instance norm, since batch statistics would
differ between data-parallel workers.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import UNet


def lung_unet(spatial_dims: int, in_channels: int, channels: Sequence[int],
              strides: Sequence[int], num_res_units: int) -> UNet:
    """A U-Net of ``channels`` per level (``strides`` between them) with background and lung
    logits out.

    >>> import torch
    >>> lung_unet(2, 1, [4, 8], [2], 1)(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 2, 32, 32])
    """
    return UNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=2,
                channels=channels, strides=strides, num_res_units=num_res_units, norm="instance")
