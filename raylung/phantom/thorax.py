"""Healthy synthetic thorax CT: the anatomy every phantom case is built on.

Anatomy is drawn in reference millimetres of an adult thorax (150 mm left-right half-width) and
scaled to each case's sampled body size, so the field of view changes the zoom, not the anatomy;
heights are fractions of the scanned range, which always runs from the upper abdomen (t = 0) to
above the lung apex (t = 1). Arrays are (z, y, x): z inferior -> superior, y anterior ->
posterior, x patient right -> left (LPS, SimpleITK's identity direction).

    >>> import numpy as np
    >>> geometry = sample_geometry(np.random.default_rng([0, 3]), size=128, slices=(16, 24))
    >>> thorax = build_thorax(geometry)
    >>> thorax.tissue.shape == geometry.scan.shape
    True

``make_case`` (case.py) adds pathology (pathology.py) and scanner noise on top; it is the public
entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy.ndimage import gaussian_filter

from raylung.preprocess.thorax_crop import bounding_box


# Hounsfield units of the tissues.
AIR_HU = -1000.0
FAT_HU = -100.0
MUSCLE_HU = 40.0
MEDIASTINUM_HU = 35.0
HEART_HU = 45.0
ABDOMEN_HU = 55.0
LUNG_HU = -850.0
VESSEL_HU = 40.0
AIRWAY_WALL_HU = 20.0
MARROW_HU = 420.0
CORTEX_HU = 900.0
CANAL_HU = 10.0

# Reference anatomy (mm of the reference adult thorax).
REF_HALF_WIDTH_MM = 150.0
THORAX_HEIGHT_MM = 300.0  # scanned range; 12 rib pitches fit in it
RIB_BAND_MM = 12.0
RIB_HALF_THICKNESS_MM = 4.5
RIB_HALF_HEIGHT_MM = 6.0
RIB_ARC = (0.35, 2.55)  # radians from the posterior midline; the front is costal cartilage
CORTEX_FRACTION = 0.45  # of the normalised squared rib radius: the outer rim is cortical bone
STERNUM_HALF_WIDTH_MM = 14.0
STERNUM_HEIGHT = (0.25, 0.9)
CANAL_RADIUS_MM = 8.0
CANAL_DEPTH_MM = 4.0  # canal centre sits this far outside the pleural cavity
CANAL_TO_BODY_MM = 2.0  # bone between the canal and the vertebral body
ARCH_RADIUS_MM = 13.0
SPINOUS_HALF_WIDTH_MM = 3.5
TRANSVERSE_REACH_MM = 28.0
TRANSVERSE_HALF_THICKNESS_MM = 4.0
VERTEBRA_CORTEX_MM = 2.5
SPINE_MARGIN_MM = 3.0  # soft tissue between spine and lung
ESOPHAGUS_GAP_MM = 6.0  # between vertebral body and trachea
HEART_TILT = 0.6  # radians; the long axis points anterior and to the left
AORTA_RADIUS_MM = 11.0
AORTA_TUCK_MM = 2.0  # the descending aorta nestles against the vertebral body
ASCENDING_AORTA_MM = (6.0, -32.0)  # from the midline and the trachea centre
ASCENDING_RADIUS_MM = 13.0
VENA_CAVA_MM = (-24.0, -20.0)
VENA_CAVA_RADIUS_MM = 10.0
ARCH_HEIGHT = 0.05  # arch top above the carina, fraction of the scan
ARCH_HALF_HEIGHT = 0.025
JUNCTION_MM = 40.0  # the mediastinum narrows over this distance in front of the trachea
JUNCTION_WIDTH = 0.45  # of the mediastinum half-width, at the anterior junction
AIRWAY_WALL_MM = 2.0
BRONCHUS_RADIUS = 0.7  # of the trachea radius
BRONCHUS_REACH_MM = 22.0  # beyond the mediastinum, into the lung
BRONCHUS_STRETCH = 1.6  # oblique bronchi cut the axial plane as ellipses
BRONCHUS_DROP_MM = 10.0  # the bronchi run posteriorly as they descend
BRONCHUS_OVERLAP = 0.02  # bronchi start just above the carina so the split is seamless
HILUM_REACH_MM = 70.0
HILUM_OFFSET_MM = 10.0  # hilum centre beyond the mediastinum and behind the trachea
LUNG_CENTRE = (0.55, 0.15)  # of the cavity half-axes: lateral, posterior
LUNG_SPREAD = (0.5, 1.0)  # of the cavity half-axes: where the domes reach their rims
VESSEL_CELL_MM = 6.0
VESSEL_WIDTH = (0.15, 0.5)  # field level that counts as vessel: lung periphery, hilum

# Acquisition ranges.
SPACING_XY_MM = (0.6, 1.0)
SPACING_Z_MM = (1.0, 3.0)
BODY_FRACTION = (0.55, 0.90)  # body half-width over half the field of view
CENTRE_JITTER = 0.05  # of half the field of view
NOISE_HU = (8.0, 30.0)
SPACING_GRID = 256  # spacings are multiples of 1/256 mm: exact in float32 NIfTI headers

# Independent random streams of one case, so pathology never changes the healthy anatomy.
VESSEL_STREAM = 1
NOISE_STREAM = 2
PATHOLOGY_STREAM = 3


class Tissue(IntEnum):
    """Tissue labels of the phantom; ``HU_BY_TISSUE`` maps each to its Hounsfield units."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    MEDIASTINUM = 3
    HEART = 4
    ABDOMEN = 5
    LUNG = 6
    AIRWAY = 7
    AIRWAY_WALL = 8
    MARROW = 9
    CORTEX = 10
    CANAL = 11


_HU = {
    Tissue.AIR: AIR_HU,
    Tissue.FAT: FAT_HU,
    Tissue.MUSCLE: MUSCLE_HU,
    Tissue.MEDIASTINUM: MEDIASTINUM_HU,
    Tissue.HEART: HEART_HU,
    Tissue.ABDOMEN: ABDOMEN_HU,
    Tissue.LUNG: LUNG_HU,
    Tissue.AIRWAY: AIR_HU,
    Tissue.AIRWAY_WALL: AIRWAY_WALL_HU,
    Tissue.MARROW: MARROW_HU,
    Tissue.CORTEX: CORTEX_HU,
    Tissue.CANAL: CANAL_HU,
}
HU_BY_TISSUE = np.array([_HU[tissue] for tissue in Tissue], dtype=np.float32)

Slices = tuple[slice, slice, slice]  # a (z, y, x) region of the volume


@dataclass(frozen=True)
class Scan:
    """How the case is sampled: voxel grid, body scale and position, noise, texture seed."""

    shape: tuple[int, int, int]  # (z, y, x) voxels
    spacing: tuple[float, float, float]  # (x, y, z) mm
    scale: float  # physical mm per reference mm
    centre_mm: tuple[float, float]  # body centre (x, y) relative to the volume centre
    noise_hu: float
    texture_seed: int


@dataclass(frozen=True)
class Wall:
    """The chest wall: body ellipse, fat and muscle layers, ribs and spine (reference mm)."""

    ap_ratio: float
    fat_mm: float
    muscle_mm: float
    taper: float  # the pleural cavity shrinks by this fraction from base (t=0) to top (t=1)
    rib_pitch_mm: float
    rib_slope_mm: float  # drop of a rib per radian as it runs from the spine to the front
    rib_phase_mm: tuple[float, float]  # right, left
    vertebra_mm: float  # radius of the vertebral body

    @property
    def half_axes(self) -> tuple[float, float]:
        """Half-width (left-right) and half-depth (anterior-posterior) of the body."""
        return REF_HALF_WIDTH_MM, self.ap_ratio * REF_HALF_WIDTH_MM

    @property
    def base_mm(self) -> float:
        """Wall thickness from skin to pleura at the lung base."""
        return self.fat_mm + self.muscle_mm + RIB_BAND_MM

    @property
    def cavity_axes(self) -> tuple[float, float]:
        """Half-axes of the pleural cavity at the base: the frame the organs are placed in."""
        a, b = self.half_axes
        return a - self.base_mm, b - self.base_mm

    @property
    def canal_y(self) -> float:
        """Spinal canal centre: just behind the cavity in the posterior midline."""
        return self.half_axes[1] - self.base_mm + CANAL_DEPTH_MM

    @property
    def vertebra_y(self) -> float:
        """Vertebral body centre, in front of the canal, bulging into the cavity."""
        return self.canal_y - CANAL_RADIUS_MM - CANAL_TO_BODY_MM - self.vertebra_mm

    def pleura(self, edge: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Distance of the pleura from the body centre along rays that meet the skin at ``edge``."""
        return (edge - np.float32(self.base_mm)) * (1 - np.float32(self.taper) * t)


@dataclass(frozen=True)
class Organs:
    """Mediastinum, heart, lungs and airways (reference mm; heights as fractions of the scan)."""

    midline_mm: float
    mediastinum_mm: float  # half-width of the central mediastinum
    heart_mm: tuple[float, float, float, float]  # centre x, y and half-axes x, y
    heart_t: tuple[float, float]  # centre height and half-height
    lung_top: float
    apex_drop: float  # how far the apex dome falls towards the lung's rim
    domes: tuple[float, float]  # diaphragm top, right and left
    recess: float  # how far the costophrenic recesses fall below the dome
    carina: float
    trachea_mm: float
    bronchus_t: float  # height over which the main bronchi run to the hilum
    lung_hu: float
    lung_gradient_hu: float  # dependent (posterior) lung is denser

    def trachea_y(self, wall: Wall) -> float:
        """Trachea centre, in front of the oesophagus and the vertebral body."""
        return wall.vertebra_y - wall.vertebra_mm - ESOPHAGUS_GAP_MM - self.trachea_mm


@dataclass(frozen=True)
class Geometry:
    """All sampled parameters of one case: replaying them rebuilds the case exactly."""

    scan: Scan
    wall: Wall
    organs: Organs


@dataclass(frozen=True)
class Grid:
    """Voxel centres in reference mm from the body centre; ``t`` is height in the scan (0..1)."""

    x: np.ndarray  # (1, nx)
    y: np.ndarray  # (ny, 1)
    t: np.ndarray  # (nz, 1, 1)
    z: np.ndarray  # (nz, 1, 1) height in reference mm, for textures and ribs
    step: tuple[float, float, float]  # (z, y, x) voxel size in reference mm


@dataclass(frozen=True)
class Thorax:
    """A healthy thorax before noise: tissue labels, HU, lung mask and the geometry behind them."""

    geometry: Geometry
    grid: Grid
    tissue: np.ndarray  # uint8 Tissue labels
    image: np.ndarray  # float32 HU without noise
    lung: np.ndarray  # bool
    radius: np.ndarray  # (ny, nx) reference mm from the body centre
    edge: np.ndarray  # (ny, nx) radius of the skin along the same ray

    @property
    def lung_box(self) -> Slices:
        """Bounding box of the lungs: where textures are worth computing."""
        return bounding_box(self.lung).slices()

    def wall_depth(self, box: Slices) -> np.ndarray:
        """Depth below the inner chest wall (reference mm) inside ``box``; negative in the wall."""
        pleura = self.geometry.wall.pleura(self.edge[box[1:]], self.grid.t[box[0]])
        return pleura - self.radius[box[1:]]

    def field(self, rng: np.random.Generator, cell_mm: float, box: Slices) -> np.ndarray:
        """Smooth random field over ``box`` with features about ``cell_mm`` wide."""
        shape = tuple(s.stop - s.start for s in box)
        return smooth_field(rng, shape, self.grid.step, cell_mm)


def sample_geometry(rng: np.random.Generator, size: int, slices: tuple[int, int]) -> Geometry:
    """Draw every parameter of one case (acquisition, wall, organs) from ``rng``."""
    scan = _sample_scan(rng, size, slices)
    wall = _sample_wall(rng)
    return Geometry(scan, wall, _sample_organs(rng, wall))


def _sample_scan(rng: np.random.Generator, size: int, slices: tuple[int, int]) -> Scan:
    """Spacing, slice count, body size and position: what makes the field of view vary."""
    spacing_xy = _exact_mm(rng.uniform(*SPACING_XY_MM))
    spacing_z = _exact_mm(rng.uniform(*SPACING_Z_MM))
    depth = int(rng.integers(slices[0], slices[1] + 1))
    half_fov = size * spacing_xy / 2
    return Scan(
        shape=(depth, size, size),
        spacing=(spacing_xy, spacing_xy, spacing_z),
        scale=float(rng.uniform(*BODY_FRACTION) * half_fov / REF_HALF_WIDTH_MM),
        centre_mm=tuple(float(c) * half_fov for c in rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2)),
        noise_hu=float(rng.uniform(*NOISE_HU)),
        texture_seed=int(rng.integers(2**31)),
    )


def _exact_mm(value: float) -> float:
    """Round a spacing to a multiple of 1/256 mm so it survives float32 headers unchanged."""
    return round(value * SPACING_GRID) / SPACING_GRID


def _sample_wall(rng: np.random.Generator) -> Wall:
    """Body shape, wall layers, rib course and vertebra size."""
    pitch = rng.uniform(22.0, 28.0)
    return Wall(
        ap_ratio=rng.uniform(0.6, 0.8),
        fat_mm=rng.uniform(5.0, 14.0),
        muscle_mm=rng.uniform(7.0, 12.0),
        taper=rng.uniform(0.25, 0.4),
        rib_pitch_mm=pitch,
        rib_slope_mm=rng.uniform(25.0, 40.0),
        rib_phase_mm=(rng.uniform(0.0, pitch), rng.uniform(0.0, pitch)),
        vertebra_mm=rng.uniform(14.0, 18.0),
    )


def _sample_organs(rng: np.random.Generator, wall: Wall) -> Organs:
    """Mediastinum, heart, lung extent and airways, placed relative to the cavity."""
    ca, cb = wall.cavity_axes
    midline = rng.uniform(-5.0, 5.0)
    dome_right = rng.uniform(0.2, 0.3)
    dome_left = dome_right - rng.uniform(0.02, 0.05)
    heart_half = rng.uniform(0.16, 0.22)
    heart_x, heart_y = midline + rng.uniform(0.15, 0.3) * ca, -rng.uniform(0.2, 0.35) * cb
    return Organs(
        midline_mm=midline,
        mediastinum_mm=rng.uniform(14.0, 22.0),
        heart_mm=(heart_x, heart_y, rng.uniform(0.42, 0.52) * ca, rng.uniform(0.45, 0.6) * cb),
        heart_t=(dome_left + 0.8 * heart_half, heart_half),
        lung_top=rng.uniform(0.88, 0.96),
        apex_drop=rng.uniform(0.15, 0.3),
        domes=(dome_right, dome_left),
        recess=rng.uniform(0.08, 0.14),
        carina=rng.uniform(0.6, 0.7),
        trachea_mm=rng.uniform(7.0, 10.0),
        bronchus_t=rng.uniform(0.06, 0.1),
        lung_hu=LUNG_HU + rng.uniform(-25.0, 25.0),
        lung_gradient_hu=rng.uniform(10.0, 40.0),
    )


def make_grid(scan: Scan) -> Grid:
    """Voxel-centre coordinates of ``scan`` in reference mm, ready to broadcast."""
    nz, ny, nx = scan.shape
    sx, sy, _ = scan.spacing
    x = ((np.arange(nx) - (nx - 1) / 2) * sx - scan.centre_mm[0]) / scan.scale
    y = ((np.arange(ny) - (ny - 1) / 2) * sy - scan.centre_mm[1]) / scan.scale
    t = np.linspace(0.0, 1.0, nz)
    step = (THORAX_HEIGHT_MM / (nz - 1), sy / scan.scale, sx / scan.scale)
    x, y, t = (a.astype(np.float32) for a in (x, y, t))
    return Grid(x[None, :], y[:, None], t[:, None, None], t[:, None, None] * THORAX_HEIGHT_MM, step)


def build_thorax(geometry: Geometry) -> Thorax:
    """Paint the tissue labels, then turn them into noise-free HU with vessels in the lungs."""
    grid = make_grid(geometry.scan)
    wall = geometry.wall
    tissue = np.zeros(geometry.scan.shape, dtype=np.uint8)
    radius, edge = polar(grid, wall)
    below_pleura = wall.pleura(edge, grid.t) - radius
    cavity = _paint_wall(tissue, edge - radius, below_pleura, wall)
    lung = _paint_organs(tissue, grid, cavity, geometry)
    _paint_ribs(tissue, grid, below_pleura, wall)
    _paint_spine(tissue, grid, geometry)
    image = _lung_hu(HU_BY_TISSUE[tissue], lung, grid, geometry)
    _add_vessels(image, lung, grid, geometry)
    return Thorax(geometry, grid, tissue, image, lung, radius, edge)


def _label(tissue: np.ndarray, label: Tissue, where: np.ndarray) -> None:
    """Set ``tissue`` to ``label`` where the (broadcastable) mask is true."""
    np.copyto(tissue, np.uint8(label), where=where)


def polar(grid: Grid, wall: Wall) -> tuple[np.ndarray, np.ndarray]:
    """Distance from the body centre and, along the same ray, of the skin (reference mm).

    Wall layers are offsets along these rays, which keeps them concentric and cheap (2-D).
    """
    a, b = wall.half_axes
    radius = np.hypot(grid.x, grid.y)
    angle = np.arctan2(grid.y, grid.x)
    edge = 1.0 / np.hypot(np.cos(angle) / a, np.sin(angle) / b)
    return radius, edge.astype(np.float32)


def _paint_wall(
    tissue: np.ndarray, below_skin: np.ndarray, below_pleura: np.ndarray, wall: Wall
) -> np.ndarray:
    """Fat under the skin, then muscle; the pleural cavity inside starts as mediastinum."""
    _label(tissue, Tissue.FAT, below_skin >= 0)
    _label(tissue, Tissue.MUSCLE, below_skin >= wall.fat_mm)
    cavity = below_pleura >= 0
    _label(tissue, Tissue.MEDIASTINUM, cavity)
    return cavity


def _paint_organs(
    tissue: np.ndarray, grid: Grid, cavity: np.ndarray, geometry: Geometry
) -> np.ndarray:
    """Abdomen under the diaphragm, heart, lungs and airways; returns the lung mask."""
    floor, ceiling = _lung_heights(grid, geometry)
    above = cavity & (grid.t >= floor)
    _label(tissue, Tissue.ABDOMEN, cavity & ~above)
    heart = above & _heart(grid, geometry.organs)
    _label(tissue, Tissue.HEART, heart)
    lung = above & (grid.t < ceiling) & ~heart & ~_mediastinal_structures(grid, geometry)
    lung &= ~_great_vessels(grid, geometry)
    first, lumen, wall = _airways(grid, geometry)
    lung[first:] &= ~wall
    _label(tissue, Tissue.LUNG, lung)
    _label(tissue[first:], Tissue.AIRWAY_WALL, wall)
    _label(tissue[first:], Tissue.AIRWAY, lumen)
    return lung


def _lung_heights(grid: Grid, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Diaphragm (floor) and apex (ceiling) heights per (y, x): domes with low rims."""
    organs = geometry.organs
    ca, cb = geometry.wall.cavity_axes
    lateral = (np.abs(grid.x - organs.midline_mm) - LUNG_CENTRE[0] * ca) / (LUNG_SPREAD[0] * ca)
    posterior = (grid.y - LUNG_CENTRE[1] * cb) / (LUNG_SPREAD[1] * cb)
    rim = np.minimum(lateral * lateral + posterior * posterior, 1.0)
    dome = np.where(grid.x > organs.midline_mm, *organs.domes[::-1]).astype(np.float32)
    return dome - organs.recess * rim, organs.lung_top - organs.apex_drop * rim


def _heart(grid: Grid, organs: Organs) -> np.ndarray:
    """Ellipsoidal heart, anterior and to the patient's left, long axis turned towards the apex."""
    hx, hy, rx, ry = organs.heart_mm
    centre, half = organs.heart_t
    cos, sin = np.cos(HEART_TILT), np.sin(HEART_TILT)
    dx, dy = grid.x - hx, grid.y - hy
    section = ((cos * dx - sin * dy) / rx) ** 2 + ((sin * dx + cos * dy) / ry) ** 2
    return section <= 1.0 - ((grid.t - centre) / half) ** 2


def _mediastinal_structures(grid: Grid, geometry: Geometry) -> np.ndarray:
    """Where no lung may be in any slice: central mediastinum, descending aorta, spine."""
    organs, wall = geometry.organs, geometry.wall
    # The lungs nearly meet in front of the heart (anterior junction line).
    front = np.clip((grid.y - organs.trachea_y(wall) + JUNCTION_MM) / JUNCTION_MM, 0.0, 1.0)
    half_width = organs.mediastinum_mm * (JUNCTION_WIDTH + (1.0 - JUNCTION_WIDTH) * front)
    central = np.abs(grid.x - organs.midline_mm) < half_width
    aorta = np.hypot(grid.x - _aorta_x(geometry), grid.y - _aorta_y(geometry)) < AORTA_RADIUS_MM
    return central | aorta | _spine_shapes(grid, geometry, SPINE_MARGIN_MM).any(axis=0)


def _aorta_x(geometry: Geometry) -> float:
    """Descending aorta: left of the vertebral body."""
    return geometry.organs.midline_mm + geometry.wall.vertebra_mm + AORTA_RADIUS_MM - AORTA_TUCK_MM


def _aorta_y(geometry: Geometry) -> float:
    """Descending aorta: level with the front half of the vertebral body."""
    return geometry.wall.vertebra_y - 0.4 * geometry.wall.vertebra_mm


def _great_vessels(grid: Grid, geometry: Geometry) -> np.ndarray:
    """Ascending aorta and superior vena cava above the heart, the aortic arch over the carina."""
    organs = geometry.organs
    x, y = grid.x - organs.midline_mm, grid.y - organs.trachea_y(geometry.wall)
    ascending = np.hypot(x - ASCENDING_AORTA_MM[0], y - ASCENDING_AORTA_MM[1]) < ASCENDING_RADIUS_MM
    cava = np.hypot(x - VENA_CAVA_MM[0], y - VENA_CAVA_MM[1]) < VENA_CAVA_RADIUS_MM
    arch_top = organs.carina + ARCH_HEIGHT
    rising = (grid.t > organs.heart_t[0]) & (grid.t < arch_top)
    arching = np.abs(grid.t - arch_top) < ARCH_HALF_HEIGHT
    return ((ascending | cava) & rising) | (_arch(grid, geometry) & arching)


def _arch(grid: Grid, geometry: Geometry) -> np.ndarray:
    """Axial footprint of the aortic arch: a tube from the ascending to the descending aorta."""
    organs = geometry.organs
    start_x = organs.midline_mm + ASCENDING_AORTA_MM[0]
    start_y = organs.trachea_y(geometry.wall) + ASCENDING_AORTA_MM[1]
    run_x, run_y = _aorta_x(geometry) - start_x, _aorta_y(geometry) - start_y
    dx, dy = grid.x - start_x, grid.y - start_y
    along = np.clip((dx * run_x + dy * run_y) / (run_x * run_x + run_y * run_y), 0.0, 1.0)
    return np.hypot(dx - along * run_x, dy - along * run_y) < AORTA_RADIUS_MM


def _airways(grid: Grid, geometry: Geometry) -> tuple[int, np.ndarray, np.ndarray]:
    """Trachea above the carina, main bronchi below it, as (first slice, lumen, lumen + wall)."""
    organs = geometry.organs
    first = int(np.searchsorted(grid.t.ravel(), organs.carina - organs.bronchus_t))
    t = grid.t[first:]
    x0, y0, radius = organs.midline_mm, organs.trachea_y(geometry.wall), organs.trachea_mm
    run = np.clip((organs.carina - t) / organs.bronchus_t, 0.0, 1.0)
    reach = (organs.mediastinum_mm + BRONCHUS_REACH_MM) * run
    # An absent tube gets radius -inf: infinitely far beyond its lumen.
    bronchus_r = np.where(t <= organs.carina + BRONCHUS_OVERLAP, BRONCHUS_RADIUS * radius, -np.inf)
    trachea = np.hypot(grid.x - x0, grid.y - y0) - np.where(t >= organs.carina, radius, -np.inf)
    beyond = trachea
    for side in (-1.0, 1.0):
        dx = (grid.x - x0 - side * reach) / BRONCHUS_STRETCH
        beyond = np.minimum(beyond, np.hypot(dx, grid.y - y0 - BRONCHUS_DROP_MM * run) - bronchus_r)
    return first, beyond < 0, beyond < AIRWAY_WALL_MM


def _paint_ribs(tissue: np.ndarray, grid: Grid, below_pleura: np.ndarray, wall: Wall) -> None:
    """Oval rib sections in the band outside the pleura, sloping down towards the front; sternum."""
    radial = (below_pleura + RIB_BAND_MM / 2) / RIB_HALF_THICKNESS_MM
    angle = np.arctan2(np.abs(grid.x), grid.y)
    phase = np.where(grid.x > 0, wall.rib_phase_mm[1], wall.rib_phase_mm[0]).astype(np.float32)
    height = grid.z + np.float32(wall.rib_slope_mm) * angle + phase
    along = np.remainder(height, wall.rib_pitch_mm) - wall.rib_pitch_mm / 2
    rib = radial * radial + (along / RIB_HALF_HEIGHT_MM) ** 2
    rib[:, (angle < RIB_ARC[0]) | (angle > RIB_ARC[1])] = np.inf
    sternum = np.where(grid.y < 0, radial * radial + (grid.x / STERNUM_HALF_WIDTH_MM) ** 2, np.inf)
    in_sternum = (grid.t > STERNUM_HEIGHT[0]) & (grid.t < STERNUM_HEIGHT[1])
    bone = np.minimum(rib, np.where(in_sternum, sternum, np.inf))
    _label(tissue, Tissue.MARROW, bone <= 1.0)
    _label(tissue, Tissue.CORTEX, (bone <= 1.0) & (bone > CORTEX_FRACTION))


def _paint_spine(tissue: np.ndarray, grid: Grid, geometry: Geometry) -> None:
    """Vertebral body (cortex around marrow), posterior elements and the spinal canal."""
    body, arch, spinous, transverse = _spine_shapes(grid, geometry, 0.0)
    core = _spine_shapes(grid, geometry, -VERTEBRA_CORTEX_MM)[0]
    dx = grid.x - geometry.organs.midline_mm
    canal = np.hypot(dx, grid.y - geometry.wall.canal_y) < CANAL_RADIUS_MM
    _label(tissue, Tissue.CORTEX, body | arch | spinous | transverse)
    _label(tissue, Tissue.MARROW, core)
    _label(tissue, Tissue.CANAL, canal)


def _spine_shapes(grid: Grid, geometry: Geometry, margin: float) -> np.ndarray:
    """Vertebral body, arch, spinous and transverse processes (2-D, grown by ``margin`` mm)."""
    wall = geometry.wall
    dx = np.abs(grid.x - geometry.organs.midline_mm)
    body = np.hypot(dx, grid.y - wall.vertebra_y) < wall.vertebra_mm + margin
    arch = np.hypot(dx, grid.y - wall.canal_y) < ARCH_RADIUS_MM + margin
    spine_end = wall.half_axes[1] - wall.fat_mm - 2.0
    spinous = (dx < SPINOUS_HALF_WIDTH_MM + margin) & (grid.y > wall.canal_y) & (grid.y < spine_end)
    transverse_band = np.abs(grid.y - wall.canal_y) < TRANSVERSE_HALF_THICKNESS_MM + margin
    transverse = (dx < TRANSVERSE_REACH_MM + margin) & transverse_band
    return np.stack(np.broadcast_arrays(body, arch, spinous, transverse))


def _lung_hu(image: np.ndarray, lung: np.ndarray, grid: Grid, geometry: Geometry) -> np.ndarray:
    """Case-specific parenchyma density, denser posteriorly as in a supine patient."""
    organs = geometry.organs
    posterior = np.clip(grid.y / geometry.wall.cavity_axes[1], -1.0, 1.0) * 0.5 + 0.5
    parenchyma = (organs.lung_hu - LUNG_HU + organs.lung_gradient_hu * posterior).astype(np.float32)
    np.add(image, parenchyma, out=image, where=lung)
    return image


def _add_vessels(image: np.ndarray, lung: np.ndarray, grid: Grid, geometry: Geometry) -> None:
    """Branching vessels where two smooth fields both cross zero; thicker near the hilum."""
    box = bounding_box(lung).slices()
    shape = tuple(s.stop - s.start for s in box)
    rng = np.random.default_rng([geometry.scan.texture_seed, VESSEL_STREAM])
    first = smooth_field(rng, shape, grid.step, VESSEL_CELL_MM)
    second = smooth_field(rng, shape, grid.step, VESSEL_CELL_MM)
    width = _vessel_width(grid, box, geometry)
    profile = np.clip(1.0 - (first * first + second * second) / (width * width), 0.0, 1.0)
    region = image[box]
    np.copyto(region, region + (VESSEL_HU - region) * profile, where=lung[box])


def _vessel_width(grid: Grid, box: Slices, geometry: Geometry) -> np.ndarray:
    """Field level that counts as vessel: wide at each lung's hilum, narrow at the periphery."""
    organs = geometry.organs
    x, y = grid.x[:, box[2]], grid.y[box[1]]
    hilum_x = organs.mediastinum_mm + HILUM_OFFSET_MM
    hilum_x = organs.midline_mm + np.sign(x - organs.midline_mm) * hilum_x
    hilum_y = organs.trachea_y(geometry.wall) + HILUM_OFFSET_MM
    hilum_z = np.float32((organs.carina - organs.bronchus_t) * THORAX_HEIGHT_MM)
    squared = (grid.z[box[0]] - hilum_z) ** 2 + ((x - hilum_x) ** 2 + (y - hilum_y) ** 2)
    near = np.clip(1.0 - np.sqrt(squared) / HILUM_REACH_MM, 0.0, 1.0)
    low, high = VESSEL_WIDTH
    return (low + (high - low) * near * near).astype(np.float32)


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], step: tuple[float, ...], cell_mm: float
) -> np.ndarray:
    """Random field of ``shape``, about unit variance, with features about ``cell_mm`` wide.

    Noise on a coarse grid of ``cell_mm`` cells is smoothed there and upsampled linearly, axis
    by axis, which costs a few passes over the output instead of a full-resolution filter.
    """
    extent = np.subtract(shape, 1) * np.asarray(step) / cell_mm
    coarse = rng.standard_normal([int(np.ceil(e)) + 2 for e in extent], dtype=np.float32)
    field = gaussian_filter(coarse, 1.0)
    field /= field.std()
    for axis in reversed(range(len(shape))):
        field = _lerp_axis(field, np.arange(shape[axis]) * (step[axis] / cell_mm), axis)
    return field


def _lerp_axis(values: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` at fractional ``positions``."""
    low = np.minimum(positions.astype(np.intp), values.shape[axis] - 2)
    shape = [-1 if a == axis else 1 for a in range(values.ndim)]
    weight = (positions - low).astype(np.float32).reshape(shape)
    below = np.take(values, low, axis=axis)
    return below + (np.take(values, low + 1, axis=axis) - below) * weight
