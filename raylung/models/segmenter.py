"""The lung segmenter: MONAI's residual U-Net, 2-D for slices and 3-D for patches.

Two output channels (background, lung) of logits; instance norm, since batch statistics would
differ between data-parallel workers.
"""

from __future__ import annotations

from monai.networks.nets import UNet
from torch import nn

from raylung.config import Config
from raylung.models.shapes import network_shape


def build_segmenter(config: Config) -> nn.Module:
    """The U-Net of ``config.seg`` for the data mode of ``config.data``.

    >>> from raylung.config import load_config
    >>> import torch
    >>> net = build_segmenter(load_config(None, ["seg.channels=[4,8]", "seg.strides=[2]"]))
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 2, 32, 32])
    """
    dims, channels = network_shape(config)
    seg = config.seg
    return UNet(spatial_dims=dims, in_channels=channels, out_channels=2, channels=seg.channels,
                strides=seg.strides, num_res_units=seg.num_res_units, norm="instance")
