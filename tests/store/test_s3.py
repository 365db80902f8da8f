"""A store on S3-compatible object storage (moto's server on 127.0.0.1), through fsspec/s3fs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from raylung.config import load_config
from raylung.ingest.run import ingest
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest
from raylung.runtime import free_port

pytest.importorskip("s3fs", reason="s3fs is not installed (pip install raylung[s3])")


@pytest.fixture(scope="module")
def s3_options():
    """Storage options of a fresh bucket on a local moto server."""
    moto = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(moto).exists():
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "test", "secret": "test",
               "client_kwargs": {"region_name": "us-east-1"}}
    import boto3

    client = boto3.client("s3", endpoint_url=options["endpoint_url"], region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket="raylung-test")
            break
        except Exception:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.2)
    yield options
    server.kill()
    server.wait()


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
