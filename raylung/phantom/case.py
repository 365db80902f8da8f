"""One phantom case: a healthy thorax (thorax.py), opacities when pathological, scanner noise.

    >>> case = make_case(seed=0, index=0, pathological=True, size=96, slices=(16, 24))
    >>> case.image.dtype.name, case.domain, bool(case.lesion.any())
    ('int16', 'pathological', True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raylung.phantom.pathology import add_opacities, sample_opacities
from raylung.phantom.thorax import NOISE_STREAM, PATHOLOGY_STREAM, build_thorax, sample_geometry


@dataclass(frozen=True)
class PhantomCase:
    """One synthetic CT case with its ground-truth masks, ready to write as NIfTI."""

    case_id: str
    image: np.ndarray  # int16 HU, axes (z, y, x)
    lung: np.ndarray  # uint8 0/1; diseased lung tissue included
    lesion: np.ndarray | None  # uint8 0/1 for pathological cases, None for healthy ones
    spacing: tuple[float, float, float]  # (x, y, z) mm, SimpleITK order
    domain: str  # "healthy" | "pathological"
    twin: np.ndarray | None = None  # int16 HU: a healthy case with its own opacities painted in


def make_case(
    seed: int, index: int, pathological: bool, size: int = 256, slices: tuple[int, int] = (80, 120),
    twin: bool = False,
) -> PhantomCase:
    """Make case ``index`` of the data set ``seed``: a healthy thorax, opacities if pathological.

    ``twin`` gives a healthy case its diseased twin: the opacities it would have had as a
    pathological case, in the same thorax with the same noise, so its lung mask stays true."""
    _check_request(seed, index, size, slices)
    geometry = sample_geometry(np.random.default_rng([seed, index]), size, slices)
    thorax = build_thorax(geometry)
    diseased, lesion = None, None
    if pathological or twin:
        rng = np.random.default_rng([seed, index, PATHOLOGY_STREAM])
        diseased, lesion = add_opacities(thorax, sample_opacities(rng, geometry))

    def scanned(image: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([geometry.scan.texture_seed, NOISE_STREAM])
        return _add_noise(image, geometry.scan.noise_hu, rng)

    return PhantomCase(
        case_id=f"phantom_{index:04d}",
        image=scanned(diseased if pathological else thorax.image),
        lung=thorax.lung.astype(np.uint8),
        lesion=lesion if pathological else None,
        spacing=geometry.scan.spacing,
        domain="pathological" if pathological else "healthy",
        twin=scanned(diseased) if twin and not pathological else None,
    )


def _check_request(seed: int, index: int, size: int, slices: tuple[int, int]) -> None:
    """Reject arguments that cannot make a thorax, with a message that says which."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    if size < 32:
        raise ValueError(f"size must be >= 32 voxels, got {size}")
    if not 2 <= slices[0] <= slices[1]:
        raise ValueError(f"slices must be (min, max) with 2 <= min <= max, got {slices}")


def _add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Scanner noise, then rounding to int16 HU."""
    noisy = image + np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    info = np.iinfo(np.int16)
    return np.clip(np.rint(noisy), info.min, info.max).astype(np.int16)
