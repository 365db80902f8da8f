"""What the data mode means for every network: spatial dims and image channels."""

from __future__ import annotations

from raylung.config import Config


def network_shape(config: Config) -> tuple[int, int]:
    """Spatial dims and image channels of the data mode (2.5-D slices stack neighbours).

    >>> from raylung.config import load_config
    >>> network_shape(load_config(None, ["data.context_slices=1"]))
    (2, 3)
    """
    if config.data.mode == "slice2d":
        return 2, 2 * config.data.context_slices + 1
    return 3, 1
