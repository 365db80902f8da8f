"""Shared fixtures: one local Ray cluster per test session, small phantoms, the real-CT folder."""

from __future__ import annotations

import json
import locale
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray

from raylung.config import PhantomConfig
from raylung.runtime import free_port

REAL_CT = Path(os.environ.get("RAYLUNG_REAL_CT", Path(__file__).parents[2] / "shared/data/real-ct"))


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-CPU local Ray cluster shared by every test that needs one, and joined by the
    ``raylung`` commands the tests start (``RAY_ADDRESS``), which saves each a cluster start.
    Its dashboard listens on loopback: Ray Train's placement-group cleaner asks its State API
    whether a killed run's controller is gone. Its processes may use MLflow's file store
    (mlflow-skinny has no database store)."""
    if not ray.is_initialized():
        port = free_port()
        os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
        context = ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
                           dashboard_port=port, log_to_driver=False,
                           runtime_env={"env_vars": {"MLFLOW_ALLOW_FILE_STORE": "true"}})
        os.environ["RAY_ADDRESS"] = context.address_info["address"]
    yield
    ray.shutdown()
    for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        os.environ.pop(key, None)


@pytest.fixture(scope="session")
def small_phantoms(tmp_path_factory) -> Path:
    """Four small phantom cases (two pathological, the healthy ones with their diseased
    twins) written once per session."""
    from raylung.phantom import write_phantoms

    out = tmp_path_factory.mktemp("phantoms")
    write_phantoms(out, PhantomConfig(cases=4, pathological_fraction=0.5, seed=3, size=96,
                                      slices=(16, 20), twins=True))
    return out


@pytest.fixture(scope="session")
def phantom_store(small_phantoms, ray_cluster, tmp_path_factory):
    """The small phantoms ingested once with the default config (a CaseStore)."""
    from raylung.config import load_config
    from raylung.ingest.run import ingest
    from raylung.store.case_store import CaseStore

    url = str(tmp_path_factory.mktemp("store") / "store")
    result = ingest(str(small_phantoms), url, load_config(), progress=False)
    assert result.ok and len(result.written) == 4, result.failures
    return CaseStore(url)


@pytest.fixture(scope="session")
def s3_options():
    """Storage options of the bucket ``raylung-test`` on a local moto S3 server (127.0.0.1),
    started once per session."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install raylung[s3])")
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


@pytest.fixture
def real_ct() -> Path:
    """The real TotalSegmentator CT folder, or a skip that says where it was looked for."""
    if not (REAL_CT / "example_ct_sm.nii.gz").exists():
        pytest.skip(f"real CT not found at {REAL_CT} (set RAYLUNG_REAL_CT to its folder)")
    return REAL_CT


def _write_image(path: Path, array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                direction=None) -> Path:
    """Write a numpy array (z, y, x) as an image file with the given geometry."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: image.GetDimension()])
    image.SetOrigin(origin[: image.GetDimension()])
    if direction is not None:
        image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture(scope="session")
def image_writer():
    """Writes a numpy array (z, y, x) as an image file with the given geometry."""
    return _write_image


def _write_dicom_series(image, folder: Path) -> Path:
    """Write an int16 SimpleITK volume as a CT DICOM series, one file per slice."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    series_tags = [
        ("0008|0060", "CT"), ("0020|000e", "1.2.826.0.1.3680043.2.1125.1.1"),
        ("0020|000d", "1.2.826.0.1.3680043.2.1125.1.2"),
        ("0020|0037", "\\".join(f"{direction[i]:.6f}" for i in (0, 3, 6, 1, 4, 7))),
    ]
    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the C locale to "C"
    for z in range(image.GetDepth()):
        slice_ = image[:, :, z]
        for tag, value in series_tags:
            slice_.SetMetaData(tag, value)
        x, y, zz = image.TransformIndexToPhysicalPoint((0, 0, z))
        slice_.SetMetaData("0020|0032", f"{x:.6f}\\{y:.6f}\\{zz:.6f}")
        slice_.SetMetaData("0020|0013", str(z + 1))
        writer.SetFileName(str(folder / f"slice_{z:04d}.dcm"))
        writer.Execute(slice_)
    # ...which would make every later open() in the test process ASCII (torch's templates fail)
    locale.setlocale(locale.LC_ALL, saved_locale)
    return folder


@pytest.fixture
def dicom_writer():
    """Writes an int16 SimpleITK volume as a DICOM series folder."""
    return _write_dicom_series


@pytest.fixture(scope="session")
def generator_file(tmp_path_factory) -> Path:
    """An exported, untrained (so visibly changing) generator for single-channel slices."""
    import torch

    from raylung.config import load_config
    from raylung.networks import export_generator
    from raylung.train.cyclegan import Generators

    # the plain G: an untrained residual one is the identity
    config = load_config(None, ["gan.width=4", "gan.n_blocks=1", "gan.residual=false",
                                "data.slice_size=[32,32]"])  # the tests' segmenter crops
    torch.manual_seed(0)
    return export_generator(Generators(config).g, config,
                            tmp_path_factory.mktemp("gan") / "generator_h2p.pt")


def _cli_args(command: str, config) -> list[str]:
    """The ``raylung COMMAND key=value ...`` command line that rebuilds ``config``."""
    def flat(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}={json.dumps(value)}"
    return [str(Path(sys.executable).parent / "raylung"), command,
            *flat(config.model_dump(mode="json"))]


def _kill_after_first_checkpoint(cli: list[str], snapshot: Path, timeout: float = 300,
                                 stop: int = signal.SIGKILL) -> tuple[int, str]:
    """Start ``cli`` in its own process group and send it ``stop`` (SIGKILL: a crash, SIGINT:
    a terminal's Ctrl-C) right after Ray Train registers its first checkpoint (``snapshot``
    appears); its exit status and stderr."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cli, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=err)
        deadline = time.monotonic() + timeout
        while not snapshot.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, stop)
        status = proc.wait(timeout=180)
        err.seek(0)
        return status, err.read()


@pytest.fixture
def cli_args():
    """Builds the ``raylung COMMAND key=value ...`` command line of a config."""
    return _cli_args


@pytest.fixture
def kill_after_first_checkpoint():
    """Runs a training command and kills it right after its first checkpoint."""
    return _kill_after_first_checkpoint
