"""Write the phantom data set: one NIfTI folder per case plus ``cases.csv``.

    OUT_DIR/phantom_0000/image.nii.gz   int16 HU
    OUT_DIR/phantom_0000/lung.nii.gz    uint8 0/1
    OUT_DIR/phantom_0000/lesion.nii.gz  uint8 0/1, pathological cases only
    OUT_DIR/phantom_0000/twin.nii.gz    int16 HU, healthy cases with ``phantom.twins`` only:
                                        the same thorax with its own opacities (an oracle)
    OUT_DIR/cases.csv                   case_id,image,lung,lesion,twin,domain (paths relative)

Every file is written under a temporary name and renamed, ``cases.csv`` last (a rerun removes
the old one first), so a folder with a ``cases.csv`` is complete. The same config always writes
the same folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import SimpleITK as sitk
from tqdm import tqdm

from raylung.io.write import write_atomic, write_image
from raylung.phantom.case import PhantomCase, make_case

if TYPE_CHECKING:
    from raylung.config import PhantomConfig

COLUMNS = ["case_id", "image", "lung", "lesion", "twin", "domain"]
# A spawn key keeps the stream that picks pathological cases apart from every per-case stream.
SELECTION_KEY = (1,)


def write_phantoms(out_dir: str | Path, config: PhantomConfig) -> pd.DataFrame:
    """Make ``config.cases`` phantom cases and write them under ``out_dir``; returns cases.csv."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cases.csv").unlink(missing_ok=True)  # an earlier table must not name new volumes
    flags = pathological_cases(config.cases, config.pathological_fraction, config.seed)
    shape = {"size": config.size, "slices": tuple(config.slices), "twin": config.twins}
    with tqdm(flags, desc="phantoms", unit="case", disable=config.cases < 2) as progress:
        rows = [_write_case(out, make_case(config.seed, index, bool(flag), **shape))
                for index, flag in enumerate(progress)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    write_atomic(out / "cases.csv", lambda tmp: table.to_csv(tmp, index=False))
    return table


def pathological_cases(cases: int, fraction: float, seed: int) -> np.ndarray:
    """Which cases are pathological: exactly ``round(cases * fraction)``, drawn from the seed."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=SELECTION_KEY))
    chosen = rng.choice(cases, round(cases * fraction), replace=False)
    flags = np.zeros(cases, dtype=bool)
    flags[chosen] = True
    return flags


def _write_case(out: Path, case: PhantomCase) -> dict[str, str]:
    """Write one case's volumes into ``out/<case_id>/``; returns its row of the cases table."""
    folder = out / case.case_id
    folder.mkdir(exist_ok=True)
    volumes = {"image": case.image, "lung": case.lung, "lesion": case.lesion, "twin": case.twin}
    row = {"case_id": case.case_id, "domain": case.domain, "lesion": "", "twin": ""}
    for name, array in volumes.items():
        if array is not None:
            write_volume(array, case.spacing, folder / f"{name}.nii.gz")
            row[name] = f"{case.case_id}/{name}.nii.gz"
        else:  # an earlier run's, when this case was another
            (folder / f"{name}.nii.gz").unlink(missing_ok=True)
    return row


def write_volume(array: np.ndarray, spacing: tuple[float, float, float], path: Path) -> None:
    """Write a (z, y, x) array as NIfTI, centred on (0, 0, 0) mm, atomically."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    size = np.array(array.shape[::-1])
    image.SetOrigin(tuple(float(o) for o in -(size - 1) / 2 * np.array(spacing)))
    write_image(image, path)
