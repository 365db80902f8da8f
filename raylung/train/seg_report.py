"""The test-split report of a trained segmenter: whole scans in their native grid, scored once.

Every labelled test case's source scan goes through the batch path of ``raylung segment`` and
its mask is scored against the source lung mask (and lesion mask) by ``raylung evaluate``'s
code. Validation and Tune never see these cases; the report is made at the end of train-seg:
``test/masks/``, ``test/references/`` and ``test/lesions/`` (the source masks on each scan's
grid, as ingest reads them), ``test/per_case.csv``, ``test/summary.csv``, ``test/report.png``:
``raylung evaluate --pred test/masks --ref test/references --lesions test/lesions --out
test/rescored`` scores them again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from raylung.config import Config
from raylung.data.pipeline import NoCasesError, check_sources, select_cases, with_store_ingest
from raylung.evaluate.folders import evaluate_cases
from raylung.io.read import read_mask, read_mask_on
from raylung.io.write import write_bytes, write_image
from raylung.segment.batch import Options, segment_batch
from raylung.segment.inputs import Job
from raylung.store.case_store import CaseStore


def report_test_split(config: Config, model: str, out: str, progress: bool = True,
                      domain: str | None = None) -> pd.DataFrame | None:
    """Segment and score every labelled test case (of ``domain`` only, if given); the per-case
    table with each case's domain, None when the store has no such case. ``model`` and
    ``out`` may be URLs (a run folder on object storage): the model is read from there, and
    the report is made locally, then uploaded. Reference masks are read with the lung labels
    of the store's ingest, as training's validation reads them."""
    config = with_store_ingest(config)
    with _local(out, config.storage.storage_options) as local_out:
        return _report(config, model, local_out, progress, domain)


def _references(row: Any, out: Path, labels: list[int]) -> tuple[Path, Path | None]:
    """A case's lung (and lesion) mask as ingest reads it, on its scan's own grid, written to
    ``out/references/`` (and ``out/lesions/``) as ``<case>.nii.gz``: what its mask is scored
    against, wherever the source masks lie on another grid or hold other labels. The grid is
    that of the case's predicted mask in ``out/masks/``, so the scan is not read again."""
    grid = read_mask(out / "masks" / f"{row.case_id}.nii.gz")
    lung = write_image(read_mask_on(row.source_lung, grid, labels),
                       out / "references" / f"{row.case_id}.nii.gz")
    if not isinstance(row.source_lesion, str):
        return lung, None
    return lung, write_image(read_mask_on(row.source_lesion, grid),
                             out / "lesions" / f"{row.case_id}.nii.gz")


@contextmanager
def _local(out: str, options: dict) -> Iterator[Path]:
    """A local stand-in for an output URL, uploaded file by file when the report is done; a
    local path is used as it is."""
    with tempfile.TemporaryDirectory(prefix="raylung-test-report-") as tmp:
        local_out = Path(tmp, "test") if "://" in out else Path(out)
        yield local_out
        if "://" in out:
            for file in sorted(p for p in local_out.rglob("*") if p.is_file()):
                write_bytes(f"{out}/{file.relative_to(local_out).as_posix()}", file.read_bytes(),
                            options)


def _report(config: Config, model: str, out: Path, progress: bool,
            domain: str | None) -> pd.DataFrame | None:
    """The report of ``report_test_split`` with a local model and output folder."""
    store = CaseStore(config.data.store, config.storage.storage_options)
    try:
        cases = select_cases(store, config.data, "test", domain, labelled_only=True)
    except NoCasesError:
        return None
    check_sources(cases, "test")
    jobs = [Job(row.case_id, row.source_image, str(out / "masks" / f"{row.case_id}.nii.gz"))
            for row in cases.itertuples()]
    # The segmenting actor reserves what a training worker did, so the report fits wherever
    # the training ran (two claim arms at once on 2 cores among them).
    scaling = config.scaling
    options = Options(device="cuda" if scaling.use_gpu else "cpu",
                      actor_cpus=scaling.cpus_per_worker,
                      actor_gpus=scaling.gpus_per_worker if scaling.use_gpu else 0.0,
                      storage_options=config.storage.storage_options)
    failed = {job.name for job, _ in segment_batch(jobs, model, options, progress)}
    rows = cases[~cases["case_id"].isin(failed)]
    pairs = [(row.case_id, out / "masks" / f"{row.case_id}.nii.gz",
              *_references(row, out, config.ingest.lung_labels)) for row in rows.itertuples()]
    per_case, _ = evaluate_cases(pairs, out, rim_mm=config.seg.rim_mm,
                                 images=dict(zip(rows["case_id"], map(Path, rows["source_image"]))),
                                 progress=progress)
    return per_case.merge(cases[["case_id", "domain"]].rename(columns={"case_id": "case"}))

