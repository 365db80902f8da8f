"""The data jobs: ``phantom``, ``ingest``, ``info`` and ``stream``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raylung.cli.jobs import add_job, flag_overrides, job_config, number, one_line_warnings
from raylung.config import Config, save_config
from raylung.store.case_store import CaseStore


def add_phantom(sub: argparse._SubParsersAction) -> None:
    """The ``phantom`` job and its flags."""
    job = add_job(sub, "phantom", _run_phantom,
                  "write synthetic thorax CT cases (NIfTI + cases.csv)",
                  ("out_dir", {"type": Path, "help": "folder to write the cases into"}))
    job.add_argument("--cases", type=int, help="number of cases (phantom.cases)")
    job.add_argument("--pathological-fraction", type=float,
                     help="share of pathological cases (phantom.pathological_fraction)")
    job.add_argument("--seed", type=int, help="random seed (phantom.seed)")


def _run_phantom(args: argparse.Namespace) -> int:
    config = job_config(args, *flag_overrides(args, {
        "phantom.cases": args.cases, "phantom.pathological_fraction": args.pathological_fraction,
        "phantom.seed": args.seed}))
    write_phantom_cases(args.out_dir, config)
    return 0


def write_phantom_cases(out_dir: Path, config: Config) -> None:
    """Write ``config.phantom``'s cases and the config into ``out_dir``; print the count."""
    from raylung.phantom import write_phantoms  # here: --help stays fast

    table = write_phantoms(out_dir, config.phantom)
    save_config(config, out_dir / "raylung_config.yaml")
    counts = table["domain"].value_counts().to_dict()
    print(f"wrote {len(table)} cases to {out_dir} ({counts})")


def add_ingest(sub: argparse._SubParsersAction) -> None:
    """The ``ingest`` job and its flags."""
    job = add_job(sub, "ingest", _run_ingest, "read CT cases with SimpleITK into a zarr store",
                  ("src", {"help": "folder of case folders (with or without cases.csv) "
                                   "or a CSV/parquet table of cases"}))
    job.add_argument("--store", required=True, help="store path or fsspec URL (s3://...)")


def _run_ingest(args: argparse.Namespace) -> int:
    return ingest_cases(args.src, args.store, job_config(args))


def ingest_cases(src: str, store_url: str, config: Config) -> int:
    """Ingest ``src`` into the store and print what was written; the exit status."""
    from raylung.ingest.run import ingest

    with one_line_warnings("ingest"):
        result = ingest(src, store_url, config)
    print(f"ingest: {len(result.written)} written, {len(result.skipped)} unchanged, "
          f"{len(result.failures)} failed -> {store_url}")
    if result.failures:
        print(f"ingest: {len(result.failures)} case(s) failed; see {store_url}/ingest_report.csv",
              file=sys.stderr)
    return 0 if result.ok else 1


def add_info(sub: argparse._SubParsersAction) -> None:
    """The ``info`` job and its flags."""
    add_job(sub, "info", _run_info, "summarise a store: cases, domains, shapes, disk size",
            ("store", {"help": "store path or fsspec URL"}))


def _run_info(args: argparse.Namespace) -> int:
    print_info(args.store, job_config(args))
    return 0


def print_info(store_url: str, config: Config) -> None:
    """Print the store's summary: cases, domains, shapes, disk size."""
    from raylung.store.manifest import format_summary, read_manifest

    store = CaseStore(store_url, config.storage.storage_options)
    print(format_summary(store_url, read_manifest(store)))


def add_stream(sub: argparse._SubParsersAction) -> None:
    """The ``stream`` job and its flags."""
    job = add_job(sub, "stream", _run_stream, "run the Ray Data pipeline alone: throughput and "
                  "a PNG grid of samples", ("store", {"help": "store path or fsspec URL"}))
    job.add_argument("--mode", choices=["slice2d", "patch3d"], help="data.mode")
    job.add_argument("--batches", type=number(int, 1), default=20,
                     help="batches to pull")
    job.add_argument("--split", default="train", choices=["train", "val", "test"])
    job.add_argument("--out", type=Path, default=Path("stream_out"),
                     help="folder for the sample grid and the resolved config")


def _run_stream(args: argparse.Namespace) -> int:
    config = job_config(args, *flag_overrides(args, {"data.store": args.store,
                                                     "data.mode": args.mode}))
    stream_samples(config, args.split, args.batches, args.out)
    save_config(config, args.out / "raylung_config.yaml")  # a stream that failed leaves none
    return 0


def stream_samples(config: Config, split: str, batches: int, out: Path) -> None:
    """Pull ``batches`` batches of ``split`` through Ray Data; print the rate, save a grid."""
    from raylung.data.pipeline import select_cases
    from raylung.data.stream import format_stats, stream
    from raylung.runtime import connect

    # a missing store, or a split without cases: one line before Ray starts
    select_cases(CaseStore(config.data.store, config.storage.storage_options), config.data,
                 split, None, False)
    connect(config.ray)
    print(format_stats(stream(config, split, batches, out)))
    print(f"sample grid -> {out / f'stream_{config.data.mode}.png'}")
