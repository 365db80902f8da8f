"""What ``raylung segment`` and ``raylung synth`` (``INPUT --out OUTPUT``) read, and where each
scan's output (a mask, a synthetic scan) goes.

INPUT is one scan (an image file SimpleITK reads, one DICOM file, or a folder holding DICOM
slices: its largest series) or a batch (a folder of image files, DICOM folders and/or case
folders as ingest reads them, ``<case>/image.nii.gz``, or a CSV/parquet table with an ``image``
column and optionally ``case_id``). One scan writes OUTPUT when it names an image file (any
suffix SimpleITK writes), else ``OUTPUT/<name>.nii.gz``; a batch writes ``OUTPUT/<name>.nii.gz``
per scan, named after it, and ``OUTPUT/.raylung_batch.json`` (the model and settings), so that a
rerun with the same ones does only the scans left.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


from raylung.errors import InputError
from raylung.io.read import (IMAGE_SUFFIXES, case_files, dicom_series, image_name,
                             image_suffix)
from raylung.io.table import cell_text, read_table
from raylung.io.write import write_atomic

TABLE_SUFFIXES = (".csv", ".parquet")
OUTPUT_SUFFIX = ".nii.gz"
BATCH_RECORD = ".raylung_batch.json"


@dataclass(frozen=True)
class Job:
    """One scan: its name, its source and the file to write (its mask, its synthetic scan)."""

    name: str
    image: str
    output: str

    @property
    def probability(self) -> str:
        """Where ``--probabilities`` writes the lung probability: beside the mask."""
        path = Path(self.output)
        suffix = image_suffix(path.name)
        return str(path.with_name(f"{path.name[: -len(suffix)]}_probability{suffix}"))


def plan_jobs(source: str | Path, out: str | Path) -> tuple[list[Job], bool]:
    """The scans of ``source`` with their mask paths, and whether it is a batch."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise InputError(source, "input not found")
    if source.suffix in TABLE_SUFFIXES:
        return _unless_overwriting(_named(_table(source), out)), True
    if source.is_file() or dicom_series(source):
        is_file = bool(image_suffix(out.name)) and not out.is_dir()
        output = out if is_file else out / f"{_scan_name(source)}{OUTPUT_SUFFIX}"
        return _unless_overwriting([Job(_scan_name(source), str(source), str(output))]), False
    # not hidden ones: .git, a killed write's temp file
    entries = sorted(p for p in source.iterdir() if not p.name.startswith("."))
    scans = [p for p in entries if p.is_dir() or _is_image(p)]
    if not scans:
        raise InputError(source, "folder holds no DICOM series, image files or scan folders")
    _warn_not_scans(source, entries, scans)
    return _unless_overwriting(_named([_case_scan(p) for p in scans], out)), True


def _warn_not_scans(folder: Path, entries: list[Path], scans: list[Path],
                    listed: int = 5) -> None:
    """Name the files among a batch folder's ``entries`` that are not ``scans`` (a scan in an
    unsupported format, ``.hdr``/``.img``, would otherwise only be missing from the count);
    the data file of a ``ct.mhd`` or ``ct.nhdr`` header (``ct.raw``) is read with it."""
    headers = {image_name(p) for p in scans if p.suffix in (".mhd", ".nhdr")}
    others = [p.name for p in entries if p.is_file() and not _is_image(p)
              and p.name.split(".")[0] not in headers]
    if others:
        more = f" and {len(others) - listed} more" if len(others) > listed else ""
        warnings.warn(f"{folder}: {', '.join(others[:listed])}{more} not read: not a scan "
                      f"(suffixes read: {', '.join(IMAGE_SUFFIXES)}; DICOM in folders)",
                      stacklevel=3)


def _case_scan(path: Path) -> Path | tuple[str, Path]:
    """A case folder's scan, named after the folder (``<case>/image.nii.gz`` or ``image/``);
    any other entry is a scan itself. One without an image is named, not read as DICOM."""
    files = case_files(path) if path.is_dir() else {}
    if not files:
        return path
    image = files.get("image")
    if image is None:
        raise InputError(path, "case folder without its scan (image.<suffix> or an image/ "
                               "DICOM folder)")
    return path.name, image


def pending(jobs: list[Job], out: str | Path, record: dict,
            outputs: Callable[[Job], list[str]]) -> list[Job]:
    """The jobs a batch into ``out`` still has to run. ``out`` keeps the ``record`` (the
    model's digest and the settings) of its batches with the scan each output came from. Under
    the same record a job whose output exists from the same scan is done (each was written
    whole); under another, every output the old record lists and these jobs' ``outputs`` go
    first, so the folder never holds two models' outputs under one record."""
    path = Path(out) / BATCH_RECORD
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = {}
    scans = old.pop("scans", {}) if isinstance(old, dict) else {}
    if old == record:
        todo = [job for job in jobs
                if not (scans.get(job.output) == job.image and Path(job.output).exists())]
    else:
        stale = [Job(Path(output).name, image, output) for output, image in scans.items()]
        for job in [*stale, *jobs]:
            for output in outputs(job):
                Path(output).unlink(missing_ok=True)
        scans, todo = {}, jobs
    scans.update({job.output: job.image for job in jobs})
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps({**record, "scans": scans},
                                                             indent=1)))
    return todo


def _unless_overwriting(jobs: list[Job]) -> list[Job]:
    """``jobs``, unless one would write over a scan of the input (``--out`` the input's own
    folder): the write is atomic, so the scan would be gone for good."""
    scans = {Path(job.image).resolve() for job in jobs}
    for job in jobs:
        if Path(job.output).resolve() in scans:
            raise InputError(job.output, "is an input scan: the output would overwrite it "
                                         "(choose another --out)")
    return jobs


def _named(scans: list[Path] | list[tuple[str, Path]], out: Path) -> list[Job]:
    """Jobs writing ``out/<name>.nii.gz``; two scans with one name are an error."""
    pairs = [s if isinstance(s, tuple) else (_scan_name(s), s) for s in scans]
    twice = [n for n, k in Counter(n for n, _ in pairs).items() if k > 1]
    if twice:
        raise InputError(pairs[0][1].parent, f"two scans are named {twice[0]!r}: their outputs "
                                             "would overwrite each other")
    return [Job(name, str(path), str(out / f"{name}{OUTPUT_SUFFIX}")) for name, path in pairs]


def _table(path: Path) -> list[tuple[str, Path]]:
    """(name, image) of every row of a CSV/parquet table; relative paths are the table's."""
    table = read_table(path, ["image"])
    blank = [i for i, image in enumerate(table["image"]) if cell_text(image) is None]
    if blank:
        raise InputError(path, f"row {blank[0] + 1} (after the header) has no image")
    images = [p if Path(p).is_absolute() else path.parent / p for p in table["image"].astype(str)]
    names = (table["case_id"].astype(str) if "case_id" in table.columns
             else [_scan_name(Path(p)) for p in images])
    return [(name, Path(image)) for name, image in zip(names, images)]


def _scan_name(path: Path) -> str:
    """A scan's name (``image_name``); a DICOM file named without a suffix (``IM0001``) keeps
    its whole name."""
    return image_name(path) or path.name


def _is_image(path: Path) -> bool:
    return path.is_file() and image_name(path) is not None
