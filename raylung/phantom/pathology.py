"""Peripheral opacities for pathological phantom cases: the disease that hides the lung rim.

Patches of diseased lung hug the chest wall, mostly posterior (dependent) at every level and
more at the base, as in fibrosis and dependent consolidation: consolidation above all, ground
glass and a fibrotic net of lines. Near the wall they are as dense as the wall, so a segmenter
trained on healthy lungs cuts them off; the lung mask keeps them (ground truth) and the lesion
mask marks them.

    >>> import numpy as np
    >>> from raylung.phantom.thorax import build_thorax, sample_geometry
    >>> geometry = sample_geometry(np.random.default_rng([0, 1]), size=96, slices=(16, 24))
    >>> thorax = build_thorax(geometry)
    >>> image, lesion = add_opacities(thorax, sample_opacities(np.random.default_rng(7), geometry))
    >>> bool(lesion.any() and not (lesion & ~thorax.lung).any())
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from raylung.phantom.thorax import Slices, Geometry, Thorax

# Hounsfield units of the opacities (before noise).
GROUND_GLASS_HU = (-600.0, -300.0)
CONSOLIDATION_HU = (-100.0, 60.0)
RETICULATION_HU = (-700.0, 0.0)  # between the lines, on the lines

# Shape of the diseased rim (reference mm, as in thorax.py).
MIN_DEPTH_MM = 5.0  # every patch covers at least this rim
DEPTH_MM = (15.0, 30.0)  # deepest reach of the strongest patches into the lung
PATCH_CELL_MM = 18.0
TYPE_CELL_MM = 30.0
NET_CELL_MM = 5.0
NET_WIDTH = 0.3  # field level that counts as a line of the net
# Disease along the posterior wall at every level, dense above all: a CycleGAN learns to draw
# it at 64 x 64 on a CPU. With basal-only, mostly faint disease (weights 1 and 1, threshold
# 0.5-1.3, an even mix) a discriminator told the domains apart on 80 % of 64 x 64 slices at
# best and G only blurred; with these, 89 %, and G draws it (issue 15 note).
POSTERIOR_WEIGHT = 2.0
BASAL_WEIGHT = 0.3
THRESHOLD = (0.2, 1.0)  # patch field level where disease starts: higher means less disease
RAMP = 0.8  # field above the threshold over which patches reach full depth and density
MIX_ALPHA = (0.5, 0.5, 2.0)  # Dirichlet weights of ground glass, reticulation, consolidation
# One patch is anchored on the posterolateral wall so every case has wall-attached disease.
ANCHOR_RADIUS_MM = 20.0
ANCHOR_ANGLE = (0.5, 1.1)  # radians from the posterior midline
ANCHOR_HEIGHT = (0.08, 0.18)  # above the diaphragm dome, fraction of the scan

GROUND_GLASS, RETICULATION, CONSOLIDATION = range(3)


@dataclass(frozen=True)
class Opacities:
    """Sampled parameters of one case's disease; replaying them redraws the same lesions."""

    threshold: float
    depth_mm: float
    mix: tuple[float, float, float]  # fractions of ground glass, reticulation, consolidation
    anchor: tuple[float, float, float]  # side (-1 right, +1 left), angle from posterior, height
    seed: int


def sample_opacities(rng: np.random.Generator, geometry: Geometry) -> Opacities:
    """Draw how much disease, how deep, which types and where the anchored patch sits."""
    side = float(rng.choice([-1.0, 1.0]))
    dome = geometry.organs.domes[0 if side < 0 else 1]
    slices = geometry.scan.shape[0] - 1
    height = round((dome + rng.uniform(*ANCHOR_HEIGHT)) * slices) / slices
    return Opacities(
        threshold=float(rng.uniform(*THRESHOLD)),
        depth_mm=float(rng.uniform(*DEPTH_MM)),
        mix=tuple(float(m) for m in rng.dirichlet(MIX_ALPHA)),
        anchor=(side, float(rng.uniform(*ANCHOR_ANGLE)), height),
        seed=int(rng.integers(2**31)),
    )


def add_opacities(thorax: Thorax, opacities: Opacities) -> tuple[np.ndarray, np.ndarray]:
    """Paint the opacities into a copy of the thorax image; returns (image, uint8 lesion mask)."""
    box = thorax.lung_box
    rng = np.random.default_rng(opacities.seed)
    excess = _strength(thorax, opacities, box, rng) - opacities.threshold
    density = np.clip(excess / RAMP, 0.0, 1.0)
    reach = MIN_DEPTH_MM + (opacities.depth_mm - MIN_DEPTH_MM) * density
    inside = thorax.lung[box] & (excess > 0) & (thorax.wall_depth(box) < reach)
    kind = thorax.field(rng, TYPE_CELL_MM, box)[inside]
    net = thorax.field(rng, NET_CELL_MM, box)[inside]
    hu = _opacity_hu(density[inside], kind, net, opacities.mix)
    image = thorax.image.copy()
    region = image[box]
    region[inside] = np.maximum(region[inside], hu)
    lesion = np.zeros(thorax.lung.shape, dtype=np.uint8)
    lesion[box] = inside
    return image, lesion


def _strength(
    thorax: Thorax, opacities: Opacities, box: Slices, rng: np.random.Generator
) -> np.ndarray:
    """Patch field biased towards the back and the base, raised around the anchor."""
    grid = thorax.grid
    y, t = grid.y[box[1]], grid.t[box[0]]
    posterior = np.clip(y / thorax.geometry.wall.cavity_axes[1], -1.0, 1.0)
    bias = POSTERIOR_WEIGHT * posterior + BASAL_WEIGHT * (1.0 - 2.0 * t)
    strength = thorax.field(rng, PATCH_CELL_MM, box) + bias.astype(np.float32)
    anchor = (opacities.threshold + RAMP) * _anchor_profile(thorax, opacities, box)
    return np.maximum(strength, anchor)


def _anchor_profile(thorax: Thorax, opacities: Opacities, box: Slices) -> np.ndarray:
    """1 at a point on the inner posterolateral chest wall, falling to 0 at ANCHOR_RADIUS_MM."""
    grid, wall = thorax.grid, thorax.geometry.wall
    side, angle, height = opacities.anchor
    a, b = wall.half_axes
    # Same ray geometry as thorax.polar, so the point lies exactly on the pleura.
    edge = 1.0 / np.hypot(np.sin(angle) / a, np.cos(angle) / b)
    radius = float(wall.pleura(np.float32(edge), np.float32(height)))
    ax, ay = side * radius * np.sin(angle), radius * np.cos(angle)
    dz = grid.z[box[0]] - grid.z[-1] * np.float32(height)
    squared = dz * dz + ((grid.x[:, box[2]] - ax) ** 2 + (grid.y[box[1]] - ay) ** 2)
    return np.clip(1.0 - squared / ANCHOR_RADIUS_MM**2, 0.0, 1.0)


def _opacity_hu(
    density: np.ndarray, kind: np.ndarray, net: np.ndarray, mix: tuple[float, ...]
) -> np.ndarray:
    """HU of lesion voxels: the type comes from a smooth field split in the case's proportions."""
    kinds = np.minimum(np.searchsorted(np.cumsum(mix), ndtr(kind)), CONSOLIDATION)
    line = np.clip(1.0 - np.abs(net) / NET_WIDTH, 0.0, 1.0)
    return np.select(
        [kinds == GROUND_GLASS, kinds == RETICULATION],
        [_span(GROUND_GLASS_HU, density), _span(RETICULATION_HU, line)],
        _span(CONSOLIDATION_HU, density),
    )


def _span(hu_range: tuple[float, float], level: np.ndarray) -> np.ndarray:
    """HU from the low end of ``hu_range`` (level 0) to its high end (level 1)."""
    return (hu_range[0] + (hu_range[1] - hu_range[0]) * level).astype(np.float32)
