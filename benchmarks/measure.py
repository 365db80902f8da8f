"""Measuring helpers shared by the benchmark scripts: a phantom store, clinical-size scans,
stage times, peak memory and decompressed bytes."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from zarr.codecs import ZstdCodec

from raylung.config import Config
from raylung.ingest.run import ingest
from raylung.phantom import write_phantoms
from raylung.phantom.case import make_case
from raylung.phantom.write import write_volume


def phantom_store(work: Path, config: Config, progress: bool = False) -> str:
    """The phantoms of ``config.phantom`` (made once in ``work/phantoms``) ingested into
    ``work/store`` (a rerun resumes); returns the store's URL, or exits naming the failures."""
    if not (work / "phantoms" / "cases.csv").exists():
        print(f"making {config.phantom.cases} phantoms in {work / 'phantoms'} ...", flush=True)
        write_phantoms(work / "phantoms", config.phantom)
    store = str(work / "store")
    result = ingest(str(work / "phantoms"), store, config, progress=progress)
    if not result.ok:
        first = result.failures[0]
        sys.exit(f"{work / 'phantoms'}: ingest failed for {len(result.failures)} case(s); "
                 f"first: {first.file}: {first.reason}")
    return store


def clinical_run(description: str, scans: int) -> tuple[argparse.Namespace, list[Path]]:
    """The options of a benchmark on clinical-size scans (``--scans``, ``--slices``,
    ``--workdir``), parsed, and its scans."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scans", type=int, default=scans)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raylung-bench-segment"))
    args = parser.parse_args()
    return args, clinical_scans(args.workdir / "scans", args.scans, args.slices)


def clinical_scans(folder: Path, count: int, slices: int) -> list[Path]:
    """``count`` pathological phantoms of 512 x 512 x ``slices`` voxels as NIfTI (written
    once, reused by later runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"scan_{index}_{slices}.nii.gz"
        if not path.exists():
            case = make_case(seed=7, index=index, pathological=True, size=512,
                             slices=(slices, slices))
            write_volume(case.image, case.spacing, path)
        paths.append(path)
    return paths


class Laps:
    """Seconds of consecutive stages: call with each stage's name as it ends."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._start = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.times[f"{name}_s"] = round(now - self._start, 2)
        self._start = now

    def table(self) -> dict[str, float]:
        """Each stage's seconds and their total."""
        return {**self.times, "total_s": round(sum(self.times.values()), 2)}


class PeakMemory:
    """Peak summed PSS (bytes) of this process and its children (Ray's workers and the
    object store pages they map included) while active, sampled every 0.25 s."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_pss())
            time.sleep(0.25)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _tree_pss() -> int:
    me = psutil.Process()
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss
        except (psutil.Error, OSError):
            continue
    return total


@contextmanager
def decoded_bytes() -> Iterator[list[int]]:
    """Count the bytes zarr-python's zstd codec decompresses in this process while active
    (``counter[0]``): the real read amplification of a chunk layout, empty chunks (never
    written, never decoded) included. TensorStore decodes the same chunks in C++."""
    counter = [0]
    original = ZstdCodec._decode_sync

    def counted(self, chunk_bytes, chunk_spec):  # noqa: ANN001, ANN202 - zarr's signature
        out = original(self, chunk_bytes, chunk_spec)
        counter[0] += out.as_numpy_array().nbytes
        return out

    ZstdCodec._decode_sync = counted
    try:
        yield counter
    finally:
        ZstdCodec._decode_sync = original
