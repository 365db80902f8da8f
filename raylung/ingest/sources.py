"""What to ingest: a table (CSV/parquet) of cases, or a folder of case folders.

A table has the columns ``case_id, image, lung, lesion, domain`` (``lung`` and ``lesion`` may be
empty; an optional ``twin`` column holds a phantom's diseased twin image); relative paths are
relative to the table's folder. A folder with ``cases.csv`` or ``cases.parquet`` is read
through that table; any other folder is scanned: each sub-folder is a case whose ``image.*``
(a file, or an ``image/`` DICOM folder), ``lung.*``, ``lesion.*`` and ``twin.*`` are found by
name (any case of suffix), and every case gets the domain given by ``ingest.domain``; other
image files in a case folder (a ``seg.nii.gz``) are not used, with a warning.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from raylung.config import DOMAINS
from raylung.errors import InputError
from raylung.io.read import CASE_FILES, IMAGE_SUFFIXES, case_files, image_suffix, printable
from raylung.io.table import cell_text, read_table

TABLE_NAMES = ("cases.csv", "cases.parquet")
REQUIRED_COLUMNS = ("case_id", "image", "domain")
LISTED = 5  # names of a case folder's files a failure shows


@dataclass(frozen=True)
class CaseSource:
    """The files of one case, as given by the user."""

    case_id: str
    image: str
    lung: str | None
    lesion: str | None
    domain: str
    twin: str | None = None  # a phantom's diseased twin of the image (same grid)

    @property
    def labelled(self) -> bool:
        """Whether the case has a lung mask (the segmenter learns only from those)."""
        return self.lung is not None


@dataclass(frozen=True)
class Failure:
    """One line of the ingest report."""

    case: str
    file: str
    reason: str


def read_sources(src: str | Path,
                 domain: str | None = None) -> tuple[list[CaseSource], list[Failure]]:
    """Every case in ``src``, its files as absolute paths (the store records them, and the
    segmenter's validation reads them from workers in other folders); rows that cannot be
    ingested come back as failures."""
    src = Path(src).expanduser().resolve()
    if src.is_dir():
        table_path = next((src / n for n in TABLE_NAMES if (src / n).exists()), None)
        if table_path is None:
            return _validate(_scan_folder(src, domain), src)
        src = table_path
    if not src.exists():
        raise InputError(src, "source not found (expected a folder of cases or a cases table)")
    return _validate(_read_table(src), src)


def _read_table(path: Path) -> list[dict]:
    rows = read_table(path, REQUIRED_COLUMNS, "cases table").to_dict("records")
    for row in rows:
        for column in ("image", "lung", "lesion", "twin"):
            row[column] = _resolve(path.parent, row.get(column))
    return rows


def _scan_folder(folder: Path, domain: str | None) -> list[dict]:
    if domain is None:
        raise InputError(folder, "folder has no cases.csv: set ingest.domain=healthy|pathological "
                                 "for its cases, or give a cases table")
    # hidden folders (.git) and a zarr store kept inside the folder are no cases
    rows = [_case_row(case_dir, domain) for case_dir in sorted(folder.iterdir())
            if case_dir.is_dir() and not case_dir.name.startswith(".")
            and not (case_dir / "zarr.json").exists()]
    if not rows:
        raise InputError(folder, "folder holds no case folders")
    return rows


def _case_row(case_dir: Path, domain: str) -> dict:
    """A case folder's row: its files, or (``no_image``) why it has no usable scan."""
    try:
        found = case_files(case_dir)
    except InputError as err:  # two scans or masks of one kind: this case fails alone
        return {"case_id": case_dir.name, "image": None, "domain": domain,
                "no_image": err.problem}
    files = {stem: str(found[stem]) if stem in found else None for stem in CASE_FILES}
    if files["image"]:
        _warn_unused(case_dir, files)
    return {"case_id": case_dir.name, **files, "domain": domain,
            "no_image": None if files["image"] else _no_image(case_dir)}


def _warn_unused(case_dir: Path, files: dict[str, str | None]) -> None:
    """Warn about the image files of a case folder that a scan does not use: a lung mask named
    ``seg.nii.gz`` would leave its case unlabelled without a word."""
    used = {Path(path).name for path in files.values() if path}
    unused = sorted(p.name for p in case_dir.iterdir()
                    if p.is_file() and image_suffix(p.name) and p.name not in used)
    if unused:
        unlabelled = "" if files["lung"] else "; without a lung.<suffix> the case is unlabelled"
        warnings.warn(f"{case_dir}: {', '.join(unused)} not used (a case folder's files are "
                      f"{', '.join(CASE_FILES)}.<suffix>{unlabelled})", stacklevel=4)


def _no_image(case_dir: Path) -> str:
    """Why a case folder has no image, with what it holds instead."""
    names = sorted(p.name + "/" * p.is_dir() for p in case_dir.iterdir())
    found = ", ".join(names[:LISTED]) + (f" and {len(names) - LISTED} more"
                                         if len(names) > LISTED else "")
    return (f"no image.<suffix> with a supported suffix ({', '.join(IMAGE_SUFFIXES)}) nor an "
            f"image/ DICOM folder in {case_dir.name}/ (found {found or 'nothing'})")


def _resolve(base: Path, value: object) -> str | None:
    text = cell_text(value)
    if text is None:
        return None
    path = Path(text)
    return str(path if path.is_absolute() else base / path)


def _validate(rows: list[dict], origin: Path) -> tuple[list[CaseSource], list[Failure]]:
    for row in rows:
        row["case_id"] = cell_text(row["case_id"]) or ""
        row["domain"] = cell_text(row["domain"])
    counts = Counter(row["case_id"] for row in rows)
    sources, failures = [], []
    for row in rows:
        problem = _row_problem(row, counts[row["case_id"]])
        if problem:
            failures.append(Failure(printable(row["case_id"]), str(origin), problem))
            continue
        sources.append(CaseSource(row["case_id"], row["image"], row.get("lung"),
                                  row.get("lesion"), row["domain"], row.get("twin")))
    return sources, failures


def _row_problem(row: dict, count: int) -> str | None:
    case_id = row["case_id"]
    why = _case_id_problem(case_id)
    if why:
        return f"invalid case id {case_id!r} ({why})"
    if count > 1:
        return f"duplicate case id {case_id!r} ({count} rows); ids must be unique"
    if row["domain"] not in DOMAINS:
        return f"unknown domain {row['domain']!r} (expected one of {', '.join(DOMAINS)})"
    if not row["image"]:
        return row.get("no_image") or "no image path given"
    return None


def _case_id_problem(case_id: str) -> str | None:
    """Why a case id cannot name its zarr group in the store (and a folder on object storage)."""
    if not case_id:
        return "empty"
    if "/" in case_id or case_id.startswith("."):
        return "'/' and a leading '.' are path syntax"
    if case_id.startswith("__") or case_id == "zarr.json":
        return "zarr reserves names starting with '__' and 'zarr.json'"
    if "::" in case_id:
        return "'::' chains URLs in fsspec"
    if re.search(r"[\x00-\x1f\x7f]", case_id):
        return "it holds a control character"
    if printable(case_id) != case_id:
        return "it is not valid UTF-8"
    return None
