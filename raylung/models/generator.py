"""The CycleGAN ResNet generator (Zhu et al. 2017) for 2-D slices and 3-D patches.

Stem, ``n_down`` stride-2 downsamplings, ``n_blocks`` residual blocks, ``n_down`` upsamplings and
a tanh head, so it maps images normalised to [-1, 1] to images in [-1, 1] of the same size.
Instance norm throughout: batch statistics would differ between data-parallel workers.
With ``noise_channels`` the generator also reads smooth random fields beside the image, so one
input can map to many outputs (where G draws its opacities), as real disease varies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.utils import normal_init
from torch import nn

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
NOISE_CELLS = 16  # voxels per cell of a noise field: a patch of disease

N_DOWN = 2  # stride-2 downsamplings (and upsamplings) of CycleGAN's ResNet generator


def _conv_norm_relu(spatial_dims: int, cin: int, cout: int, kernel: int,
                    stride: int = 1) -> nn.Sequential:
    """Reflection-padded conv, instance norm, ReLU: the generator's repeated unit."""
    # No conv bias: the affine instance norm right after it adds the same shift.
    conv = _CONV[spatial_dims](cin, cout, kernel, stride=stride, padding=kernel // 2,
                               padding_mode="reflect", bias=False)
    return nn.Sequential(conv, _NORM[spatial_dims](cout, affine=True), nn.ReLU())


class ResidualBlock(nn.Module):
    """Two 3-wide conv + instance norm layers added back onto their input."""

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_norm_relu(spatial_dims, channels, channels, 3),
            _CONV[spatial_dims](channels, channels, 3, padding=1, padding_mode="reflect",
                                bias=False),
            _NORM[spatial_dims](channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + body(x)``."""
        return x + self.body(x)


def _upsample(spatial_dims: int, cin: int, cout: int) -> nn.Sequential:
    """Nearest 2x upsampling then a conv block; avoids the checkerboard of transposed convs."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         _conv_norm_relu(spatial_dims, cin, cout, 3))


def smooth_noise(like: torch.Tensor, channels: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``channels`` random fields of ``like``'s batch and size: N(0, 1) on a coarse grid
    (:func:`noise_grid`), interpolated, so they vary at the scale of a lesion.
    Drawn from ``generator`` (a CPU one) when given, else from torch's global RNG."""
    spatial = tuple(like.shape[2:])
    coarse = torch.randn(like.shape[0], channels, *noise_grid(spatial), generator=generator,
                         device="cpu" if generator else like.device)
    return upsample_noise(coarse, spatial).to(device=like.device, dtype=like.dtype)


def noise_grid(spatial: tuple[int, ...]) -> tuple[int, ...]:
    """Cells of a noise field per axis: one per ``NOISE_CELLS`` voxels, at least one."""
    return tuple(max(1, s // NOISE_CELLS) for s in spatial)


def upsample_noise(coarse: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """Coarse noise cells (B, C, *cells) interpolated to fields of size ``spatial``."""
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    return F.interpolate(coarse, size=spatial, mode=mode, align_corners=False)


def _check_args(spatial_dims: int, in_channels: int, out_channels: int, width: int,
                n_blocks: int, n_down: int) -> None:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                             ("width", width, 1), ("n_blocks", n_blocks, 0), ("n_down", n_down, 0)):
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")


class ResnetGenerator(nn.Module):
    """CycleGAN ResNet generator; output has the input's size when it is divisible by 2**n_down.

    >>> g = ResnetGenerator(2, width=4, n_blocks=1)
    >>> g(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 1, 16, 16])
    >>> x = torch.rand(1, 1, 16, 16) * 2 - 1
    >>> bool(torch.equal(ResnetGenerator(2, width=4, n_blocks=1, residual=True)(x), x))
    True
    """

    def __init__(self, spatial_dims: int, in_channels: int = 1, out_channels: int = 1,
                 width: int = 32, n_blocks: int = 6, n_down: int = N_DOWN,
                 residual: bool = False, noise_channels: int = 0) -> None:
        super().__init__()
        _check_args(spatial_dims, in_channels, out_channels, width, n_blocks, n_down)
        if residual and in_channels != out_channels:
            raise ValueError("a residual generator needs in_channels == out_channels")
        if noise_channels < 0:
            raise ValueError(f"noise_channels must be >= 0, got {noise_channels}")
        self.spatial_dims = spatial_dims
        self.n_down = n_down
        self.residual = residual
        self.noise_channels = noise_channels
        widths = [width * 2**i for i in range(n_down + 1)]
        self.net = nn.Sequential(
            _conv_norm_relu(spatial_dims, in_channels + noise_channels, width, 7),
            *(_conv_norm_relu(spatial_dims, a, b, 3, stride=2) for a, b in zip(widths, widths[1:])),
            *(ResidualBlock(spatial_dims, widths[-1]) for _ in range(n_blocks)),
            *(_upsample(spatial_dims, b, a) for a, b in reversed(list(zip(widths, widths[1:])))),
            _CONV[spatial_dims](width, out_channels, 7, padding=3, padding_mode="reflect"),
            nn.Tanh(),
        )
        # N(0, 0.02) as in CycleGAN, and the same init as the MONAI discriminator.
        self.apply(normal_init)
        if residual:  # start as the identity: the change is learnt where the losses ask for it
            nn.init.zeros_(self.net[-2].weight)
            nn.init.zeros_(self.net[-2].bias)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Translate ``x`` of shape (B, in_channels, *spatial) to (B, out_channels, *spatial);
        a residual generator returns ``clamp(x + net(x), -1, 1)`` (``net`` ends in tanh).
        A generator with noise channels reads ``noise`` beside ``x`` (fresh fields if None)."""
        self._check_input(x)
        inputs = x
        if self.noise_channels:
            noise = smooth_noise(x, self.noise_channels) if noise is None else noise
            inputs = torch.cat([x, noise.to(x.dtype)], dim=1)
        out = self.net(inputs)
        return (x + out).clamp(-1.0, 1.0) if self.residual else out

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(f"expected a (B, C, *spatial) tensor with {self.spatial_dims} spatial "
                             f"dims, got shape {tuple(x.shape)}")
        divisor = 2**self.n_down
        # Reflection padding needs at least 2 voxels per axis at the bottleneck (and 4 at the stem).
        smallest = max(4, 2 * divisor)
        spatial = tuple(x.shape[2:])
        if any(s % divisor for s in spatial) or min(spatial) < smallest:
            raise ValueError(f"input spatial size {spatial} must be divisible by {divisor} "
                             f"(2**n_down, n_down={self.n_down}) and at least {smallest} per axis")
