"""A store on S3-compatible object storage (moto's server on 127.0.0.1), through fsspec/s3fs."""

from __future__ import annotations


import numpy as np
import pytest

from raylung.config import load_config
from raylung.ingest.run import ingest
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest

pytest.importorskip("s3fs", reason="s3fs is not installed (pip install raylung[s3])")


@pytest.mark.usefixtures("ray_cluster")
def test_ingest_into_s3_and_read_back(small_phantoms, s3_options, tmp_path):
    url = "s3://raylung-test/store"
    config = load_config()
    config.storage.storage_options = s3_options
    assert ingest(str(small_phantoms), url, config, progress=False).ok
    local = tmp_path / "local"
    ingest(str(small_phantoms), str(local), load_config(), progress=False)
    remote_store, local_store = CaseStore(url, s3_options), CaseStore(str(local))
    assert remote_store.case_ids() == local_store.case_ids()
    case = remote_store.case_ids()[0]
    assert np.array_equal(remote_store.open_case(case)["image"][5:9, 10:40, 20:50],
                          local_store.open_case(case)["image"][5:9, 10:40, 20:50])
    assert len(read_manifest(remote_store)) == 4
