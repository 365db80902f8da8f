"""Crop throughput: raylung's Ray Data stream against the usual ways, on the same files, one run.

    .venv/bin/pip install -e ".[bench]"                                  # nibabel, for (c)
    .venv/bin/python benchmarks/data_throughput.py                      # 20 x 512^2 x 200 phantoms
    .venv/bin/python benchmarks/data_throughput.py --cases 4 --size 256 --slices 100   # quick

Methods, all producing random 64^3 image + lung crops (half lung-centred) unless noted:
  (a) raylung   Ray Data actor pool reading only the chunks a crop needs (also 2-D slices);
                augmentation off; with and without the 5 mm surround band (computed per sample)
  (b) naive     SimpleITK reads the whole .nii.gz for every crop
  (c) monai     LoadImaged + RandCropByPosNegLabeld(num_samples=16), DataLoader(num_workers=2)
  (d) zarr      plain zarr slicing of the same store in one process, no Ray (the ceiling)
For (a) the table also gives the start-up time (first batch: actor start, first reads) and
the steady rate after it; the ratios use the steady rate. Memory is the peak summed PSS of this process and all its children (Ray's workers and object
store pages included), sampled every 0.25 s. Read amplification is bytes decompressed per
sample over the bytes of the crop. Prints a table and writes benchmarks/results/data_throughput.csv.
"""

from __future__ import annotations

import argparse
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import SimpleITK as sitk

from raylung.config import load_config
from raylung.store.case_store import CaseStore
from raylung.store.manifest import read_manifest

RESULTS = Path(__file__).parent / "results"
PATCH = 64


def main() -> None:
    args = _args()
    work = Path(args.workdir)
    store_url = _prepare(work, args)
    store = CaseStore(store_url)
    manifest = read_manifest(store)
    rows = [_zarr_ceiling(store, manifest, args.samples),
            _naive_sitk(work, manifest, max(4, args.samples // 16)),
            _monai(work, manifest, args.monai_volumes)]
    rows += _raylung(store_url, args.samples)
    table = pd.DataFrame(rows)
    # (a) is compared by its steady rate: Ray's start-up is paid once per training run
    steady = table["steady_samples_per_s"].fillna(table["samples_per_s"])
    best_c = table.loc[table["method"] == "(c) monai", "samples_per_s"].max()
    table["vs_best_c"] = (steady / best_c).round(1)
    ceiling = table.loc[table["method"] == "(d) zarr", "samples_per_s"].max()
    table["vs_ceiling_d"] = (steady / ceiling).round(2)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "data_throughput.csv", index=False)
    print(table.to_string(index=False))


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--size", type=int, default=512, help="in-plane voxels")
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--samples", type=int, default=800, help="crops per fast method")
    parser.add_argument("--monai-volumes", type=int, default=6, help="volumes MONAI loads")
    parser.add_argument("--workdir", default="/tmp/raylung-bench-data",
                        help="phantoms and store (reused when present)")
    return parser.parse_args()


def _prepare(work: Path, args: argparse.Namespace) -> str:
    """Phantoms and their store at native spacing (so NIfTI and zarr hold the same voxels)."""
    from raylung.ingest.run import ingest
    from raylung.phantom import write_phantoms

    config = load_config(None, [f"phantom.cases={args.cases}", f"phantom.size={args.size}",
                                f"phantom.slices=[{args.slices},{args.slices}]",
                                "ingest.spacing_mm=null", "ray.num_cpus=2"])
    if not (work / "src" / "cases.csv").exists():
        print(f"making {args.cases} phantoms of {args.size}^2 x {args.slices} in {work} ...")
        write_phantoms(work / "src", config.phantom)
    result = ingest(str(work / "src"), str(work / "store"), config, progress=True)
    assert result.ok, result.failures
    import ray

    ray.shutdown()  # (a) starts its own cluster later, so (b)-(d) run without Ray
    return str(work / "store")


class PeakMemory:
    """Peak summed PSS (bytes) of this process and its children while active."""

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


def _amplification(start: tuple[int, ...], size: tuple[int, ...], chunks: tuple[int, ...]) -> float:
    """Voxels in the chunks a crop touches over voxels in the crop."""
    touched = 1
    for s, n, c in zip(start, size, chunks):
        touched *= ((s + n - 1) // c - s // c + 1) * c
    return touched / float(np.prod(size))


def _zarr_ceiling(store: CaseStore, manifest: pd.DataFrame, count: int) -> dict:
    crops = _random_crops(manifest, count, 0)
    groups = {c: store.open_case(c) for c in manifest["case_id"]}
    chunks = groups[crops[0][0]]["image"].chunks
    row = {"method": "(d) zarr", "mode": "patch64", "samples": count}
    with _measured(row):
        for case_id, start in crops:
            window = tuple(slice(s, s + PATCH) for s in start)
            groups[case_id]["image"][window], groups[case_id]["lung"][window]
    row["read_amplification"] = round(np.mean([_amplification(s, (PATCH,) * 3, chunks)
                                               for _, s in crops]), 2)
    return row


def _naive_sitk(work: Path, manifest: pd.DataFrame, count: int) -> dict:
    crops = _random_crops(manifest, count, 1)
    row = {"method": "(b) naive", "mode": "patch64", "samples": count}
    with _measured(row):
        for case_id, start in crops:
            window = tuple(slice(s, s + PATCH) for s in start)
            sitk.GetArrayFromImage(sitk.ReadImage(str(work / "src" / case_id / "image.nii.gz")))[window]
            sitk.GetArrayFromImage(sitk.ReadImage(str(work / "src" / case_id / "lung.nii.gz")))[window]
    voxels = manifest[["shape_z", "shape_y", "shape_x"]].prod(axis=1).mean()
    row["read_amplification"] = round(voxels / PATCH**3, 1)
    return row


def _monai(work: Path, manifest: pd.DataFrame, volumes: int) -> dict:
    """MONAI's recommended random crop pipeline: 16 crops per loaded volume, 2 workers."""
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, RandCropByPosNegLabeld

    keys = ["image", "label"]
    files = [{"image": str(work / "src" / c / "image.nii.gz"),
              "label": str(work / "src" / c / "lung.nii.gz")}
             for c in manifest["case_id"].iloc[:volumes]]
    transform = Compose([LoadImaged(keys, reader="NibabelReader"), EnsureChannelFirstd(keys),
                         RandCropByPosNegLabeld(keys, "label", (PATCH,) * 3, pos=1, neg=1,
                                                num_samples=16)])
    loader = DataLoader(Dataset(files, transform), batch_size=1, num_workers=2)
    row = {"method": "(c) monai", "mode": "patch64", "samples": 16 * len(files)}
    with _measured(row):
        for _ in loader:
            pass
    voxels = manifest[["shape_z", "shape_y", "shape_x"]].prod(axis=1).mean()
    row["read_amplification"] = round(voxels / (16 * PATCH**3), 1)
    return row


def _spec_amplification(store_url: str, config) -> float:
    """Mean read amplification of the image crops the pipeline's specs ask for."""
    from raylung.data.pipeline import load_centres, select_cases
    from raylung.data.specs import draw_specs

    store = CaseStore(store_url)
    cases = select_cases(read_manifest(store), config.data, "train", None, False)
    specs = draw_specs(cases, load_centres(store, cases), config.data, 0, "train/None/False")
    boxes = cases.set_index("case_id")
    chunks = store.open_case(cases["case_id"].iloc[0])["image"].chunks
    values = []
    for spec in specs:
        if config.data.mode == "patch3d":
            values.append(_amplification((spec["z"], spec["y"], spec["x"]),
                                         config.data.patch_size, chunks))
        else:
            box = boxes.loc[spec["case_id"]]
            values.append(_amplification((spec["z"], box.box_y0, box.box_x0),
                                         (1, box.box_y, box.box_x), chunks))
    return float(np.mean(values))


def _raylung(store_url: str, count: int) -> list[dict]:
    import ray

    from raylung.data.pipeline import build_dataset

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    for mode, band_mm in (("patch3d", 0), ("patch3d", 5), ("slice2d", 0), ("slice2d", 5)):
        config = load_config(None, [f"data.store={store_url}", f"data.mode={mode}",
                                    f"data.samples_per_epoch={count}", "data.batch_size=8",
                                    "data.split_fractions=[1,0,0]", "data.augment.enabled=false",
                                    "data.lung_centre_fraction=0.5", "data.read_concurrency=2",
                                    f"data.surround_mm={band_mm}"])
        dataset = build_dataset(config, "train", [0])
        name = "patch64" if mode == "patch3d" else "slice256"
        row = {"method": "(a) raylung", "mode": f"{name}{' +band' if band_mm else ''}",
               "samples": count}
        with _measured(row):
            start = time.perf_counter()
            for i, _ in enumerate(dataset.iter_batches(batch_size=8, batch_format="numpy")):
                if i == 0:
                    first = time.perf_counter()
        row["startup_s"] = round(first - start, 2)
        row["steady_samples_per_s"] = round((count - 8) / (time.perf_counter() - first), 1)
        row["read_amplification"] = round(_spec_amplification(store_url, config), 2)
        rows.append(row)
    ray.shutdown()
    return rows


if __name__ == "__main__":
    main()
