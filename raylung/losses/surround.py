"""The surrounding L1 loss: the translation must leave the band around the lung untouched.

Keeping chest wall, ribs and mediastinum fixed keeps the lung's outline, so the healthy scan's
lung mask stays valid for the synthetic diseased image (README, "The shape-aware CycleGAN").
"""

from __future__ import annotations

import torch


def surround_l1(translated: torch.Tensor, original: torch.Tensor,
                surround: torch.Tensor) -> torch.Tensor:
    """sum |S * (G(h) - h)| / (max(sum S, 1) * C): mean absolute change per band voxel and channel.

    Images are (B, C, *spatial); the band S is (B, *spatial) or (B, 1, *spatial) and is shared by
    the channels. Voxels outside the band (the lung) get no gradient; an empty band gives 0.

    >>> h = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]]]])
    >>> g = torch.tensor([[[[1.0, -2.0], [4.0, 8.0]]]])
    >>> surround_l1(g, h, torch.tensor([[[1, 1], [0, 0]]]))
    tensor(1.5000)
    """
    if translated.shape != original.shape:
        raise ValueError(f"images must have the same shape, got {tuple(translated.shape)} "
                         f"and {tuple(original.shape)}")
    # fp32 whatever the images' dtype: a bf16 sum of the band rounds counts above 2^16
    band = _as_channel_mask(surround, translated).float()
    channels = translated.shape[1]
    return (band * (translated.float() - original.float())).abs().sum() / (band.sum().clamp(min=1) * channels)


def _as_channel_mask(surround: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """The band as (B, 1, *spatial) so it broadcasts over the image channels."""
    band = surround.unsqueeze(1) if surround.ndim == images.ndim - 1 else surround
    expected = (images.shape[0], 1, *images.shape[2:])
    if tuple(band.shape) != expected:
        raise ValueError(f"surround must have shape (B, *spatial) or (B, 1, *spatial) matching "
                         f"images {tuple(images.shape)}, got {tuple(surround.shape)}")
    return band
