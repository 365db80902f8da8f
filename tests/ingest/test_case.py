"""One case's preparation without Ray: what its source hashes cover, what its image must hold."""

from __future__ import annotations

import os

import numpy as np
import pytest

from raylung.config import IngestConfig
from raylung.errors import InputError
from raylung.ingest.case import prepare_case, source_hash, source_stat
from raylung.ingest.sources import CaseSource
from raylung.phantom import make_case


@pytest.mark.parametrize("suffix", [".mhd", ".nhdr"])
def test_the_source_hashes_cover_the_data_file_a_header_names(tmp_path, image_writer, suffix):
    """Only the header was hashed: a rerun skipped a case whose voxels had changed."""
    header = image_writer(tmp_path / f"image{suffix}", np.zeros((4, 5, 6), np.int16))
    raw = tmp_path / "image.raw"
    source, cfg = CaseSource("c", str(header), None, None, "healthy"), IngestConfig()
    before = source_stat(source, cfg), source_hash(source, cfg)
    mtime = raw.stat().st_mtime_ns
    raw.write_bytes(np.ones(4 * 5 * 6, np.int16).tobytes())
    os.utime(raw, ns=(mtime + 10**9, mtime + 10**9))
    after = source_stat(source, cfg), source_hash(source, cfg)
    assert after[0] != before[0] and after[1] != before[1]
    raw.unlink()
    with pytest.raises(InputError, match=r"image.raw: file not found$"):
        source_stat(source, cfg)


def test_an_image_without_air_is_no_ct_in_hounsfield_units(tmp_path, image_writer):
    """A scan stored without its RescaleIntercept (or +1024) was ingested as if in HU."""
    case = make_case(seed=0, index=0, pathological=False, size=64, slices=(16, 16))
    hu = image_writer(tmp_path / "hu/image.nii.gz", case.image, case.spacing)
    assert prepare_case(CaseSource("hu", str(hu), None, None, "healthy"), IngestConfig())
    shifted = image_writer(tmp_path / "shifted/image.nii.gz", case.image + 1024, case.spacing)
    with pytest.raises(InputError, match=r"shifted/image.nii.gz: no voxel below -500 HU: not a "
                                         r"CT in Hounsfield units \(a missing RescaleIntercept "
                                         r"or a \+1024 offset\?\)$"):
        prepare_case(CaseSource("shifted", str(shifted), None, None, "healthy"), IngestConfig())
