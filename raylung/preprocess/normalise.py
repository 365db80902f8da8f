"""HU normalisation for the networks: clip to a window, map linearly to [-1, 1].

With the default window (-1024, 1024) air is -1, water 0 and bone saturates at +1; the tanh
output of a generator maps back to HU with :func:`to_hu`.
"""

from __future__ import annotations

import numpy as np

AIR_HU = -1024.0  # air, and the fill outside a scan


def normalise_hu(hu: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """float32 in [-1, 1] from HU clipped to ``window``."""
    lo, hi = window
    out = np.clip(hu, lo, hi).astype(np.float32, copy=False)  # one new array, then in place
    out -= np.float32(lo)
    out *= np.float32(2.0 / (hi - lo))
    out -= np.float32(1.0)
    return out


def to_hu(normalised: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`normalise_hu` inside the window."""
    lo, hi = window
    return (np.asarray(normalised, np.float32) + 1.0) * np.float32((hi - lo) / 2.0) + lo
