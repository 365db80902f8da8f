"""Ingest throughput, compression, and crop read time from the store against the .nii.gz files.

    .venv/bin/python benchmarks/ingest.py              # 20 phantoms of 256x256x~120, 2 workers
    .venv/bin/python benchmarks/ingest.py --cases 4    # a quick look

Prints three tables and writes them as CSV under benchmarks/results/: the ingest run (with two
reruns: of unchanged sources, skipped by their sizes and times, and of sources only touched,
whose bytes are hashed), the read time of one axial slice and one 64^3 patch (store vs NIfTI),
and the layout sweep that chose the default ``ingest.chunks`` and ``ingest.shards``: write time,
disk, read time through TensorStore (raylung's local reader) and zarr-python, and the read
amplification (bytes decompressed over crop bytes, counted at zarr's zstd codec).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from measure import decoded_bytes

from raylung.config import load_config
from raylung.ingest.run import ingest
from raylung.phantom import write_phantoms
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest, summarise

RESULTS = Path(__file__).parent / "results"
PATCH = 64
SHARDS = (64, 128, 128)
LAYOUTS = [((1, 512, 512), None), ((8, 128, 128), None), ((64, 64, 64), None),
           ((2, 32, 32), SHARDS), ((4, 32, 32), SHARDS), ((8, 16, 16), SHARDS),
           ((16, 16, 16), SHARDS)]


def main() -> None:
    args = _args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="raylung-bench-ingest-"))
    config = load_config(None, [f"phantom.cases={args.cases}", "phantom.size=256",
                                "phantom.slices=[110,130]", "ray.num_cpus=2",
                                "ray.max_parallel_cases=2"])
    print(f"making {args.cases} phantoms in {work} ...")
    write_phantoms(work / "src", config.phantom)
    tables = {"ingest": _bench_ingest(work, config)}
    store = CaseStore(str(work / "store"))
    tables["reads"] = _bench_reads(work, store, args.repeats)
    tables["chunks"] = _bench_chunks(work, store, args.repeats)
    RESULTS.mkdir(exist_ok=True)
    for name, table in tables.items():
        print(f"\n## {name}\n{table.to_string(index=False)}")
        table.to_csv(RESULTS / f"ingest_{name}.csv", index=False)
    if not args.workdir:
        shutil.rmtree(work)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20, help="random crops per measurement")
    parser.add_argument("--workdir", help="keep phantoms and store here (default: a temp dir)")
    return parser.parse_args()


def _bench_ingest(work: Path, config) -> pd.DataFrame:
    source_voxels = sum(sitk.ReadImage(str(p)).GetNumberOfPixels()
                        for p in (work / "src").glob("*/image.nii.gz"))
    start = time.perf_counter()
    result = ingest(str(work / "src"), str(work / "store"), config, progress=False)
    seconds = time.perf_counter() - start
    assert result.ok, result.failures
    summary = summarise(read_manifest(CaseStore(str(work / "store"))))
    rerun_start = time.perf_counter()
    ingest(str(work / "src"), str(work / "store"), config, progress=False)
    rerun_seconds = time.perf_counter() - rerun_start
    for path in (work / "src").rglob("*.nii.gz"):
        os.utime(path)  # new times, same bytes: the rerun hashes every byte to find them alike
    touched_start = time.perf_counter()
    ingest(str(work / "src"), str(work / "store"), config, progress=False)
    return pd.DataFrame([{
        "cases": summary["cases"], "workers": 2, "seconds": round(seconds, 1),
        "cases_per_s": round(summary["cases"] / seconds, 2),
        "source_MB_per_s": round(source_voxels * 2 / 1e6 / seconds, 1),
        "stored_raw_MB": round(summary["raw_bytes"] / 1e6, 1),
        "stored_disk_MB": round(summary["disk_bytes"] / 1e6, 1),
        "compression_ratio": round(summary["compression_ratio"], 2),
        "rerun_unchanged_s": round(rerun_seconds, 2),
        "rerun_touched_s": round(time.perf_counter() - touched_start, 2),
    }])


def _bench_reads(work: Path, store: CaseStore, repeats: int) -> pd.DataFrame:
    manifest = read_manifest(store)
    rng = np.random.default_rng(0)
    rows = []
    for kind in ("slice", "patch64"):
        zarr_ms, nifti_ms = [], []
        for _ in range(repeats):
            case = manifest.iloc[rng.integers(len(manifest))]
            arr = store.volume(case.case_id, "image")
            crop = _random_crop(arr.shape, kind, rng)
            zarr_ms.append(_time_ms(lambda: arr[crop]))
            nifti = work / "src" / case.case_id / "image.nii.gz"
            nifti_ms.append(_time_ms(lambda: _nifti_crop(nifti, kind, rng)))
        rows.append({"read": kind, "store_ms": round(np.median(zarr_ms), 2),
                     "nifti_ms": round(np.median(nifti_ms), 1),
                     "speedup": round(np.median(nifti_ms) / np.median(zarr_ms), 1)})
    return pd.DataFrame(rows)


def _nifti_crop(path: Path, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The naive read: decompress the whole volume, then cut the crop out."""
    volume = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    return volume[_random_crop(volume.shape, kind, rng)]


def _bench_chunks(work: Path, store: CaseStore, repeats: int) -> pd.DataFrame:
    """Rewrite the first cases with each candidate layout and time the same reads."""
    case_ids = store.case_ids()[:4]
    volumes = {c: store.volume(c, "image")[...] for c in case_ids}
    rows = []
    for chunks, shards in LAYOUTS:
        name = "x".join(map(str, chunks)) + (f" in {'x'.join(map(str, shards))}" if shards else "")
        scratch = CaseStore(str(work / f"layout_{name.replace(' ', '_')}"))
        scratch.create()
        start = time.perf_counter()
        for case_id, volume in volumes.items():
            scratch.write_case(case_id, {"image": volume}, {}, {"source_hash": ""}, chunks, 3,
                               shards)
        row = {"layout_zyx": name, "write_s_per_case": round((time.perf_counter() - start) /
                                                             len(volumes), 2),
               "disk_MB": round(scratch.disk_bytes() / 1e6, 1)}
        for kind in ("slice", "patch64"):
            row[f"{kind}_ms"] = round(_median_read(scratch, case_ids, kind, repeats, True)[0], 2)
            with decoded_bytes() as decoded:
                ms, crop_bytes = _median_read(scratch, case_ids, kind, repeats, False)
            row[f"{kind}_ms_zarr_python"] = round(ms, 2)
            row[f"{kind}_amplification"] = round(decoded[0] / crop_bytes, 2)
        rows.append(row)
    return pd.DataFrame(rows)


def _median_read(store: CaseStore, case_ids: list[str], kind: str, repeats: int,
                 tensorstore: bool) -> tuple[float, int]:
    """Median ms of ``repeats`` random crops, and the bytes of all of them."""
    rng = np.random.default_rng(1)
    times, crop_bytes = [], 0
    for _ in range(repeats):
        case_id = case_ids[rng.integers(len(case_ids))]
        arr = store.volume(case_id, "image") if tensorstore else store.open_case(case_id)["image"]
        crop = _random_crop(arr.shape, kind, rng)
        times.append(_time_ms(lambda: arr[crop]))
        crop_bytes += np.broadcast_to(0, arr.shape)[crop].size * arr.dtype.itemsize
    return float(np.median(times)), crop_bytes


def _random_crop(shape: tuple[int, ...], kind: str, rng: np.random.Generator) -> tuple:
    if kind == "slice":
        return (int(rng.integers(shape[0])), slice(None), slice(None))
    starts = [int(rng.integers(0, max(1, s - PATCH + 1))) for s in shape]
    return tuple(slice(s, s + PATCH) for s in starts)


def _time_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    main()
