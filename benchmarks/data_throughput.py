"""Crop throughput: raylung's Ray Data stream against the usual ways, on the same files, one run.

    .venv/bin/pip install -e ".[bench]"                                  # nibabel, for (c)
    .venv/bin/python benchmarks/data_throughput.py                      # 20 x 512^2 x 200 phantoms
    .venv/bin/python benchmarks/data_throughput.py --cases 4 --size 256 --slices 100   # quick

Methods, all producing random 64^3 image + lung crops (half lung-centred) unless noted:
  (a) raylung   Ray Data actor pool reading only the chunks a crop needs (also 2-D slices);
                augmentation off; with and without the 5 mm surround band (computed per sample)
  (b) naive     SimpleITK reads the whole .nii.gz for every crop
  (c) monai     LoadImaged + RandCropByPosNegLabeld(num_samples=16), DataLoader(num_workers=2)
  (d) ceiling   plain slicing of the same store in one process, no Ray: TensorStore (raylung's
                reader for local stores) and zarr-python; and raylung's own reader making
                (a)'s patch samples in one process (so vs_reader_d is what Ray's stream adds)
  (e) floor     the same Ray Data stream with readers that read nothing: Ray's own processes
                (GCS, raylet, agents, Ray Data's service actors) plus a driver and 2 actors
Each method runs in a fresh child process, so none inherits another's imports or heap, and
(d)'s fast rows run once more at the end ("again"): the ratios take (d)'s faster run. (a)
also runs with blocks of 8 samples (data.read_block=8, the old default) as the baseline of
the 32-sample blocks. For (a) the table also gives the start-up time (first batch: actor
start, first reads) and the steady rate after it; the ratios use the steady rate. Memory is
the peak summed PSS of the child and all its children (Ray's workers and object store pages
included); over_floor_GiB is what (a) holds beyond (e). Read
amplification is bytes decompressed per sample over the bytes of the crop (image + lung),
counted at zarr's zstd codec while the same crops (for (a): the specs of its epoch, read by
raylung's own sample code) are read with zarr-python, which decodes the chunks TensorStore
decodes. Mvox/s is crop voxels per second, so slices and patches compare per voxel.
Prints a table and writes benchmarks/results/data_throughput.csv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from measure import PeakMemory, decoded_bytes, phantom_store

from raylung.config import load_config
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest

RESULTS = Path(__file__).parent / "results"
PATCH = 64
ROW_MARK = "ROWS "


METHODS = ("tensorstore", "zarr-python", "reader", "naive", "monai", "floor", "raylung")
# (d)'s fast rows run again after (a); the ratios take the faster run, against (a)'s favour
AGAIN = ("tensorstore", "reader")


def main() -> None:
    args = _args()
    work = Path(args.workdir)
    if args.method:
        print(ROW_MARK + json.dumps(_run_method(args.method, work, args)))
        return
    _prepare(work, args)
    rows = [row for method in METHODS for row in _in_child(method, args)]
    rows += [{**row, "mode": f"{row['mode']} again"} for method in AGAIN
             for row in _in_child(method, args)]
    table = _ratios(pd.DataFrame(rows))
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "data_throughput.csv", index=False)
    print(table.to_string(index=False))


def _in_child(method: str, args: argparse.Namespace) -> list[dict]:
    """Run one method in a fresh interpreter; its rows come back as one marked JSON line."""
    argv = [sys.executable, __file__, "--method", method, "--workdir", args.workdir,
            "--samples", str(args.samples), "--monai-volumes", str(args.monai_volumes)]
    print(f"[{method}] ...", flush=True)
    out = subprocess.run(argv, capture_output=True, encoding="utf-8")
    marked = [line for line in out.stdout.splitlines() if line.startswith(ROW_MARK)]
    if out.returncode != 0 or not marked:
        raise SystemExit(f"{method} failed:\n{out.stderr[-3000:]}")
    return json.loads(marked[-1].removeprefix(ROW_MARK))


def _run_method(method: str, work: Path, args: argparse.Namespace) -> list[dict]:
    _warm_page_cache(work / ("phantoms" if method in ("naive", "monai") else "store"))
    store_url = str(work / "store")
    store = CaseStore(store_url)
    manifest = read_manifest(store)
    if method == "tensorstore":
        return [_ceiling(method, store, manifest, args.samples)]
    if method == "zarr-python":  # 30x slower: fewer crops suffice to count its decodes
        return [_ceiling(method, store, manifest, min(args.samples, 400))]
    if method == "reader":
        return [_samples_without_ray(store_url, args.samples)]
    if method == "naive":
        return [_naive_sitk(work, manifest, max(4, args.samples // 16))]
    if method == "monai":
        return [_monai(work, manifest, args.monai_volumes)]
    if method == "floor":
        return [_ray_floor(store_url, args.samples)]
    return _raylung(store_url, args.samples)


def _ratios(table: pd.DataFrame) -> pd.DataFrame:
    """(a) is compared by its steady rate (Ray's start-up is paid once per training run)."""
    steady = table["steady_samples_per_s"].fillna(table["samples_per_s"])
    table["Mvox_per_s"] = (steady * table["crop_voxels"] / 1e6).round(1)
    monai = table[table["method"] == "(c) monai"]
    table["vs_best_c"] = (steady / monai["samples_per_s"].max()).round(1)
    table["mem_vs_c"] = (table["peak_pss_GiB"] / monai["peak_pss_GiB"].min()).round(2)
    for method, column in (("(d) tensorstore", "vs_slicing_d"), ("(d) raylung reader", "vs_reader_d")):
        table[column] = (steady / table.loc[table["method"] == method, "samples_per_s"].max()).round(2)
    floor = table.loc[table["method"] == "(e) floor", "peak_pss_GiB"].max()
    table["over_floor_GiB"] = (table["peak_pss_GiB"] - floor).where(
        table["method"] == "(a) raylung").round(2)
    return table.drop(columns="crop_voxels")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--size", type=int, default=512, help="in-plane voxels")
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--samples", type=int, default=1600, help="crops per fast method")
    parser.add_argument("--monai-volumes", type=int, default=20, help="volumes MONAI loads")
    parser.add_argument("--workdir", default="/tmp/raylung-bench-data",
                        help="phantoms and store (reused when present)")
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)  # one child's run
    return parser.parse_args()


def _warm_page_cache(folder: Path) -> None:
    """Read every file once, so each method starts with its data in the page cache (this
    machine's kernel reclaims idle page cache: a cold first method ran 1.5x slower)."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass


def _prepare(work: Path, args: argparse.Namespace) -> None:
    """Phantoms and their store at native spacing (so NIfTI and zarr hold the same voxels)."""
    config = load_config(None, [f"phantom.cases={args.cases}", f"phantom.size={args.size}",
                                f"phantom.slices=[{args.slices},{args.slices}]",
                                "ingest.spacing_mm=null", "ray.num_cpus=2"])
    phantom_store(work, config, progress=True)
    import ray

    ray.shutdown()  # every method starts from a fresh process


@contextmanager
def _measured(row: dict):
    with PeakMemory() as memory:
        start = time.perf_counter()
        yield
        row["seconds"] = round(time.perf_counter() - start, 2)
    row["samples_per_s"] = round(row["samples"] / row["seconds"], 1)
    row["peak_pss_GiB"] = round(memory.peak / 2**30, 2)


def _random_crops(manifest: pd.DataFrame, count: int, seed: int) -> list[tuple[str, tuple]]:
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        case = manifest.iloc[rng.integers(len(manifest))]
        shape = (case.shape_z, case.shape_y, case.shape_x)
        start = tuple(int(rng.integers(0, n - PATCH + 1)) for n in shape)
        crops.append((case.case_id, start))
    return crops


def _ceiling(method: str, store: CaseStore, manifest: pd.DataFrame, count: int) -> dict:
    """Random crops sliced in this process: TensorStore, or zarr-python (decodes counted)."""
    crops = _random_crops(manifest, count, 0)
    opener = store.volume if method == "tensorstore" else lambda c, n: store.open_case(c)[n]
    volumes = {(c, n): opener(c, n) for c in manifest["case_id"] for n in ("image", "lung")}
    row = {"method": f"(d) {method}", "mode": "patch64", "samples": count,
           "crop_voxels": PATCH**3}
    with decoded_bytes() as decoded, _measured(row):
        for case_id, start in crops:
            window = tuple(slice(s, s + PATCH) for s in start)
            volumes[case_id, "image"][window], volumes[case_id, "lung"][window]
    if method == "zarr-python":
        row["read_amplification"] = round(decoded[0] / (count * PATCH**3 * 3), 2)
    return row


def _naive_sitk(work: Path, manifest: pd.DataFrame, count: int) -> dict:
    crops = _random_crops(manifest, count, 1)
    row = {"method": "(b) naive", "mode": "patch64", "samples": count, "crop_voxels": PATCH**3}
    with _measured(row):
        for case_id, start in crops:
            window = tuple(slice(s, s + PATCH) for s in start)
            for name in ("image.nii.gz", "lung.nii.gz"):
                path = str(work / "phantoms" / case_id / name)
                sitk.GetArrayFromImage(sitk.ReadImage(path))[window]
    voxels = manifest[["shape_z", "shape_y", "shape_x"]].prod(axis=1).mean()
    row["read_amplification"] = round(voxels / PATCH**3, 1)
    return row


def _monai(work: Path, manifest: pd.DataFrame, volumes: int) -> dict:
    """MONAI's recommended random crop pipeline: 16 crops per loaded volume, 2 workers."""
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, RandCropByPosNegLabeld

    keys = ["image", "label"]
    files = [{"image": str(work / "phantoms" / c / "image.nii.gz"),
              "label": str(work / "phantoms" / c / "lung.nii.gz")}
             for c in manifest["case_id"].iloc[:volumes]]
    transform = Compose([LoadImaged(keys, reader="NibabelReader"), EnsureChannelFirstd(keys),
                         RandCropByPosNegLabeld(keys, "label", (PATCH,) * 3, pos=1, neg=1,
                                                num_samples=16)])
    loader = DataLoader(Dataset(files, transform), batch_size=1, num_workers=2)
    row = {"method": "(c) monai", "mode": "patch64", "samples": 16 * len(files),
           "crop_voxels": PATCH**3}
    with _measured(row):
        for _ in loader:
            pass
    voxels = manifest[["shape_z", "shape_y", "shape_x"]].prod(axis=1).mean()
    row["read_amplification"] = round(voxels / (16 * PATCH**3), 1)
    return row


def _spec_amplification(store_url: str, config, limit: int = 200) -> float:
    """Bytes decompressed over crop bytes when raylung's sample code reads the epoch's specs."""
    from raylung.data.pipeline import load_centres, select_cases
    from raylung.data.sample import make_sample
    from raylung.data.specs import draw_specs

    store = CaseStore(store_url)
    cases = select_cases(store, config.data, "train", None, False)
    specs = draw_specs(cases, load_centres(store, cases), config.data, 0, "train/None/False")
    groups, crop_bytes = {}, 0
    with decoded_bytes() as decoded:
        for spec in list(specs)[:limit]:
            group = groups.setdefault(spec["case_id"], store.open_case(spec["case_id"]))
            attrs = dict(group.attrs["raylung"])
            make_sample(group, attrs, spec, config.data)
            crop_bytes += _crop_voxels(attrs, config.data) * (3 if attrs["labelled"] else 2)
    return decoded[0] / crop_bytes


def _crop_voxels(attrs: dict, data) -> int:
    """Voxels a sample takes from the store: the patch, or the slice's thorax box."""
    if data.mode == "patch3d":
        return int(np.prod(data.patch_size))
    _, _, y0, y1, x0, x1 = attrs["thorax_box"]
    return (y1 - y0) * (x1 - x0)


def _mean_crop_voxels(store_url: str, config) -> float:
    manifest = read_manifest(CaseStore(store_url))
    if config.data.mode == "patch3d":
        return float(np.prod(config.data.patch_size))
    return float((manifest["box_y"] * manifest["box_x"]).mean())


def _config(store_url: str, mode: str, band_mm: float, count: int, *extra: str):
    return load_config(None, [f"data.store={store_url}", f"data.mode={mode}",
                              f"data.samples_per_epoch={count}", "data.batch_size=8",
                              "data.split_fractions=[1,0,0]", "data.augment.enabled=false",
                              "data.lung_centre_fraction=0.5", "data.read_concurrency=2",
                              f"data.surround_mm={band_mm}", *extra])


def _samples_without_ray(store_url: str, count: int) -> dict:
    """(a)'s patches made by raylung's reader in this process: what Ray's stream adds to."""
    from raylung.data.pipeline import CropReader, load_centres, select_cases
    from raylung.data.specs import draw_specs

    config = _config(store_url, "patch3d", 0, count)
    store = CaseStore(store_url)
    cases = select_cases(store, config.data, "train", None, False)
    specs = draw_specs(cases, load_centres(store, cases), config.data, 0, "train/None/False")
    reader = CropReader(store_url, {}, config.data)
    row = {"method": "(d) raylung reader", "mode": "patch64", "samples": count,
           "crop_voxels": PATCH**3}
    with _measured(row):
        for first in range(0, count, 8):
            batch = specs[first:first + 8]
            reader({key: np.array([spec[key] for spec in batch]) for key in batch[0]})
    return row


class _ReadNothing:
    """(e)'s reader: an actor of the same pool shape that passes its specs on."""

    def __call__(self, specs: dict) -> dict:
        return specs


def _ray_floor(store_url: str, count: int) -> dict:
    """(e): Ray's fixed memory under the same stream shape (driver, 2 actors, services)."""
    import ray

    config = _config(store_url, "patch3d", 0, count)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # blocks of read_block specs, as the pipeline streams them (no CPU taken from the actors)
    data = config.data
    specs = ray.data.from_items([{"index": i} for i in range(count)],
                                override_num_blocks=max(1, -(-count // data.read_block)))
    dataset = specs.map_batches(_ReadNothing, batch_size=data.read_block,
                                compute=ray.data.ActorPoolStrategy(size=data.read_concurrency),
                                num_cpus=data.reader_cpus)
    row = {"method": "(e) floor", "mode": "no reads", "samples": count, "crop_voxels": 0}
    with _measured(row):
        for _ in dataset.iter_batches(batch_size=8):
            pass
    ray.shutdown()
    return row


def _raylung(store_url: str, count: int) -> list[dict]:
    import ray

    from raylung.data.pipeline import build_dataset

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows, amplification = [], {}
    for mode, band_mm, block in (("patch3d", 0, 8), ("patch3d", 0, 32), ("patch3d", 5, 32),
                                 ("slice2d", 0, 8), ("slice2d", 0, 32), ("slice2d", 5, 32)):
        config = _config(store_url, mode, band_mm, count, f"data.read_block={block}")
        dataset = build_dataset(config, "train", [0])
        name = "patch64" if mode == "patch3d" else "slice256"
        row = {"method": "(a) raylung",
               "mode": f"{name}{' +band' if band_mm else ''}{' blocks8' if block == 8 else ''}",
               "samples": count, "crop_voxels": _mean_crop_voxels(store_url, config)}
        with _measured(row):
            start = time.perf_counter()
            for i, _ in enumerate(dataset.iter_batches(batch_size=8, batch_format="numpy")):
                if i == 0:
                    first = time.perf_counter()
        row["startup_s"] = round(first - start, 2)
        row["steady_samples_per_s"] = round((count - 8) / (time.perf_counter() - first), 1)
        if (mode, band_mm) not in amplification:  # the same specs at any block size
            amplification[mode, band_mm] = round(_spec_amplification(store_url, config), 2)
        row["read_amplification"] = amplification[mode, band_mm]
        rows.append(row)
    ray.shutdown()
    return rows


if __name__ == "__main__":
    main()
