"""What the config means for every network: spatial dims and image channels of the data
mode, and the CycleGAN generator of ``gan.*`` (the trainer's G and F, and a loaded export)."""

from __future__ import annotations

from raylung.config import Config
from raylung.models.generator import ResnetGenerator


def network_shape(config: Config) -> tuple[int, int]:
    """Spatial dims and image channels of the data mode (2.5-D slices stack neighbours).

    >>> from raylung.config import load_config
    >>> network_shape(load_config(None, ["data.context_slices=1"]))
    (2, 3)
    """
    if config.data.mode == "slice2d":
        return 2, 2 * config.data.context_slices + 1
    return 3, 1


def build_generator(config: Config, noise: bool = True) -> ResnetGenerator:
    """A CycleGAN generator of ``config.gan`` for the data mode (same channels in and out);
    ``noise``: it reads ``gan.noise_channels`` random fields (G does, F removes disease)."""
    dims, channels = network_shape(config)
    gan = config.gan
    return ResnetGenerator(dims, channels, channels, gan.width, gan.n_blocks,
                           residual=gan.residual,
                           noise_channels=gan.noise_channels if noise else 0)
