"""Score folders of predicted masks against reference masks and write the evaluation files.

Cases are matched by name (file name less its image suffix, a DICOM series folder's name, or
the name of a case folder as ingest reads them: its ``lung``, ``lesion`` or ``image`` file);
masks must already share the reference's grid: a mismatch is an error, never a resample.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from tqdm import tqdm

from raylung.errors import InputError
from raylung.evaluate.report import save_report, summarise_scores
from raylung.evaluate.scores import CaseWarning, Row, score_case
from raylung.io.geometry import same_grid
from raylung.io.read import IMAGE_SUFFIXES, case_files, image_name, read_mask, read_volume
from raylung.io.write import write_atomic

Case = tuple[str, Path, Path, Path | None]
_SEEN: dict = {}  # registry of re-raised library warnings: each shown once per process


def match_cases(pred: Path, ref: Path, lesions: Path | None = None) -> list[Case]:
    """(case, prediction, reference, lesion or None) for every reference case, sorted by name.

    Two folders are matched by case name, two files form one case named after the reference;
    a reference without prediction is an error, a prediction without reference a warning.
    """
    pred, ref = Path(pred), Path(ref)
    single = _single_case(ref)
    refs = _masks(ref, single, ref, "lung")
    preds = _masks(pred, single, ref, "lung")
    lesion_masks = {} if lesions is None else _masks(Path(lesions), single, ref, "lesion")
    missing = sorted(set(refs) - set(preds))
    if missing:
        more = f" (and {len(missing) - 1} more cases)" if len(missing) > 1 else ""
        raise InputError(refs[missing[0]], f"no prediction for case '{missing[0]}' in {pred}{more}")
    warn_unmatched("prediction(s)", pred, preds, refs)
    if lesions is not None:
        warn_unmatched("lesion mask(s)", lesions, lesion_masks, refs)
        unscored = sorted(set(refs) - set(lesion_masks))
        if unscored:
            warnings.warn(f"{len(unscored)} of {len(refs)} cases have no lesion mask in {lesions}"
                          f", so no lesion inclusion: {', '.join(unscored)}", stacklevel=2)
    return [(name, preds[name], refs[name], lesion_masks.get(name)) for name in sorted(refs)]


def warn_unmatched(what: str, where: Path, found: dict[str, Path], refs: dict[str, Path]) -> None:
    """Warn about the files in ``where`` whose name matches no reference case."""
    extra = sorted(set(found) - set(refs))
    if extra:
        warnings.warn(f"{len(extra)} {what} in {where} have no reference and are ignored: "
                      f"{', '.join(extra)}", stacklevel=3)


def _single_case(ref: Path) -> str | None:
    """The case name when REF is one mask file, None when it is a folder of cases."""
    if not ref.exists():
        raise InputError(ref, "not found")
    if ref.is_dir():
        return None
    name = image_name(ref)
    if name is None:
        raise InputError(ref, f"not a mask file (expected a name ending "
                              f"{', '.join(IMAGE_SUFFIXES)})")
    return name


def _masks(path: Path, single: str | None, ref: Path, stem: str) -> dict[str, Path]:
    """Masks by case: ``path`` itself as case ``single``, or the cases in folder ``path`` (a
    case folder's ``stem`` file)."""
    if not path.exists():
        raise InputError(path, "not found")
    if (single is None) != path.is_dir():
        kind, ref_kind = ("a folder", "one file") if path.is_dir() else ("one file", "a folder")
        raise InputError(path, f"is {kind} but the reference {ref} is {ref_kind}: give two files "
                               "or two folders")
    masks = {single: path} if single is not None else files_by_case(path, stem)
    if not masks:
        raise InputError(path, f"no masks found (files ending {', '.join(IMAGE_SUFFIXES)} or "
                               "DICOM series folders)")
    return masks


def files_by_case(folder: Path, stem: str) -> dict[str, Path]:
    """Images or masks of a folder by case name, a case folder's by its ``stem`` file (none
    where it has none: an unlabelled case); other files and hidden ones are skipped."""
    if not folder.is_dir():
        raise InputError(folder, "not found (expected a folder of images or masks)")
    masks: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        name = image_name(entry)
        if name is None or entry.name.startswith("."):
            continue
        files = case_files(entry) if entry.is_dir() else {}
        path = files.get(stem) if files else entry
        if path is None:
            continue
        if name in masks:
            raise InputError(path, f"case '{name}' has a second mask {masks[name].name}: keep one")
        masks[name] = path
    return masks


def evaluate_cases(cases: Sequence[Case], out: Path, rim_mm: float = 3.0,
                   tolerance_mm: float = 2.0, images: dict[str, Path] | None = None,
                   progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every case, then write ``out``/per_case.csv, summary.csv and report.png.

    ``images`` (case -> CT) only backs the report's slices. Returns (per_case, summary).
    """
    if not cases:
        raise ValueError("no cases to evaluate")
    rows = []
    for name, pred, ref, lesion in tqdm(cases, desc="evaluate", unit="case", disable=not progress):
        rows += [{"case": name, **row}
                 for row in _score_files(name, pred, ref, lesion, rim_mm, tolerance_mm)]
    per_case = pd.DataFrame(rows)
    summary = summarise_scores(per_case)
    out = Path(out)
    paths = {name: (pred, ref) for name, pred, ref, _ in cases}
    # the report first: it reads the worst cases' scans, and one that fails leaves no tables
    save_report(per_case, lambda case: _volumes(*paths[case], (images or {}).get(case)),
                out / "report.png")
    write_atomic(out / "per_case.csv", lambda tmp: per_case.to_csv(tmp, index=False))
    write_atomic(out / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False))
    return per_case, summary


def _score_files(name: str, pred_path: Path, ref_path: Path, lesion_path: Path | None,
                 rim_mm: float, tolerance_mm: float) -> list[Row]:
    """Read one case, check its grids and score it; its masks' warnings name the case."""
    ref = read_mask(ref_path)
    pred = _check_grid(read_mask(pred_path), pred_path, ref, ref_path)
    lesion = None if lesion_path is None else _check_grid(read_mask(lesion_path), lesion_path,
                                                          ref, ref_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CaseWarning)
        rows = score_case(sitk.GetArrayFromImage(pred), sitk.GetArrayFromImage(ref),
                          ref.GetSpacing()[::-1], rim_mm, tolerance_mm,
                          None if lesion is None else sitk.GetArrayFromImage(lesion) != 0)
    for warning in caught:
        if issubclass(warning.category, CaseWarning):
            warnings.warn(f"case {name}: {warning.message}", warning.category, stacklevel=3)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno, registry=_SEEN)
    return rows


def _check_grid(mask: sitk.Image, path: Path, ref: sitk.Image, ref_path: Path) -> sitk.Image:
    """``mask`` if it lies on the reference grid; else a one-line InputError saying how not."""
    if same_grid(mask, ref):
        return mask
    problem = (f"grid differs from the reference {ref_path}: size {mask.GetSize()} vs "
               f"{ref.GetSize()}, spacing {_rounded(mask.GetSpacing())} vs "
               f"{_rounded(ref.GetSpacing())}")
    if not np.allclose(mask.GetOrigin(), ref.GetOrigin(), atol=1e-4):
        problem += f", origin {_rounded(mask.GetOrigin())} vs {_rounded(ref.GetOrigin())}"
    if not np.allclose(mask.GetDirection(), ref.GetDirection(), atol=1e-4):
        problem += ", direction differs"
    raise InputError(path, problem)


def _rounded(values: Sequence[float]) -> tuple[float, ...]:
    """Geometry values short enough for a one-line message."""
    return tuple(round(float(v), 4) for v in values)


def _volumes(pred_path: Path, ref_path: Path,
             image_path: Path | None) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(image or None, reference, prediction) arrays of one case for the report."""
    ref = read_mask(ref_path)
    image = None if image_path is None else read_volume(image_path)
    if image is not None and not same_grid(image, ref):
        warnings.warn(f"{image_path}: not on the grid of {ref_path}; report shows masks only",
                      stacklevel=2)
        image = None
    arrays = [None if image is None else sitk.GetArrayFromImage(image),
              sitk.GetArrayFromImage(ref), sitk.GetArrayFromImage(read_mask(pred_path))]
    return tuple(arrays)
