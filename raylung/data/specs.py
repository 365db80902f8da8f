"""Sample specs: which case, where, and with which augmentation seed, drawn per epoch.

A spec is a small dict; the crops themselves are read later by the Ray Data actors. Specs
depend only on (data.seed, epoch, stream, cases), so any epoch can be replayed exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from raylung.config import DataConfig
from raylung.seeds import text_seed

_SYNTH_STREAM = 0x5E6  # mixed into the sample seed: the draw is independent of augmentation
_NOISE_STREAM = 0x2015E  # the same for the noise fields a G with noise inputs reads
_TWIN_STREAM = 0x7717  # the same for the oracle's twin, apart from G's draw


def draw_specs(cases: pd.DataFrame, centres: dict[str, np.ndarray], cfg: DataConfig,
               epoch: int, stream: str) -> list[dict]:
    """``cfg.samples_per_epoch`` specs over ``cases`` (manifest rows) for one epoch."""
    rng = np.random.default_rng([cfg.seed, epoch, text_seed(stream)])
    picks = rng.integers(len(cases), size=cfg.samples_per_epoch)
    specs = []
    for index, row in enumerate(cases.iloc[picks].itertuples(index=False)):
        spec = {"index": index, "epoch": epoch, "case_id": row.case_id, "domain": row.domain,
                "labelled": bool(row.labelled), "seed": int(rng.integers(2**63 - 1))}
        if cfg.mode == "slice2d":
            spec.update(_slice_position(row, cfg, rng))
        else:
            spec.update(_patch_position(row, centres.get(row.case_id), cfg, rng))
        specs.append(spec)
    return specs


def _slice_position(row, cfg: DataConfig, rng: np.random.Generator) -> dict:
    """An axial slice through the lung: its mask's z range when labelled, else the range of
    the air inside the body (the thorax box when there is none), so both domains' slices come
    from the same anatomy and slice level cannot tell a discriminator the domain; a share
    ``box_slices`` of either domain's slices anywhere in the thorax box."""
    anywhere = cfg.box_slices > 0 and rng.random() < cfg.box_slices
    if anywhere:
        z0, z1 = row.box_z0, row.box_z1
    elif row.labelled:
        z0, z1 = row.lung_z0, row.lung_z1
    elif pd.notna(getattr(row, "air_z0", None)):
        z0, z1 = row.air_z0, row.air_z1
    else:
        z0, z1 = row.box_z0, row.box_z1
    z = int(rng.integers(int(z0), int(z1)))
    return {"z": z, "y": int(row.box_y0), "x": int(row.box_x0),
            "lung_centred": bool(row.labelled and not anywhere)}


def _patch_position(row, centres: np.ndarray | None, cfg: DataConfig,
                    rng: np.random.Generator) -> dict:
    """Patch start: centred on a cached lung voxel (on a random point of the air box when the
    case is unlabelled) with probability ``lung_centre_fraction``, else on a random point of
    the thorax box."""
    cached = centres is not None and len(centres) > 0
    air = not row.labelled and pd.notna(getattr(row, "air_z0", None))
    on_lung = (cached or air) and rng.random() < cfg.lung_centre_fraction
    if on_lung and cached:
        centre = centres[rng.integers(len(centres))]
    else:
        prefix = "air" if on_lung else "box"
        centre = [rng.integers(int(getattr(row, f"{prefix}_{axis}0")),
                               int(getattr(row, f"{prefix}_{axis}1"))) for axis in "zyx"]
    shape = (row.shape_z, row.shape_y, row.shape_x)
    start = [_clamp_start(int(c) - p // 2, p, int(n))
             for c, p, n in zip(centre, cfg.patch_size, shape)]
    return {"z": start[0], "y": start[1], "x": start[2], "lung_centred": bool(on_lung)}


def _clamp_start(start: int, size: int, extent: int) -> int:
    """Keep the patch inside the volume; a volume smaller than the patch is centred (padded)."""
    if extent < size:
        return (extent - size) // 2
    return min(max(start, 0), extent - size)


def chosen_for_synthesis(seed: int, p_synth: float, oracle: bool = False) -> bool:
    """Whether the sample of ``seed`` goes through G, or with ``oracle`` is replaced by its
    diseased twin (replayable, independent per sample, and the two draws apart).

    >>> [chosen_for_synthesis(s, 0.0) for s in range(3)], chosen_for_synthesis(5, 1.0)
    ([False, False, False], True)
    """
    stream = _TWIN_STREAM if oracle else _SYNTH_STREAM
    return bool(np.random.default_rng([seed, stream]).random() < p_synth)


def noise_seed(seed: int) -> int:
    """The seed of the noise fields G reads for the sample of ``seed`` (``gan.noise_channels``),
    so a translated sample replays exactly too."""
    return int(np.random.default_rng([seed, _NOISE_STREAM]).integers(2**63))
