"""The store's manifest (one row per committed case) and its data-derived settings.

Both are recomputed from the committed cases after every ingest, so they never disagree with
the store; like nnU-Net's fingerprint they are derived from the data and never hand-edited.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from raylung.store.case_store import CaseStore

MANIFEST = "manifest.parquet"
SUMMARY = "summary.json"


def build_manifest(store: CaseStore) -> pd.DataFrame:
    """One row per committed case with its geometry, crop box, sizes and lung HU statistics."""
    rows = []
    for case_id in store.case_ids():
        group = store.open_case(case_id)
        rows.append(_row(dict(group.attrs["raylung"]), group, store.disk_bytes(case_id)))
    return pd.DataFrame(rows)


def write_manifest(store: CaseStore) -> pd.DataFrame:
    """Rebuild and write ``manifest.parquet`` and ``summary.json``; return the manifest."""
    manifest = build_manifest(store)
    store.write_table(MANIFEST, manifest)
    store.write_bytes(SUMMARY, json.dumps(summarise(manifest), indent=2).encode())
    return manifest


def read_manifest(store: CaseStore) -> pd.DataFrame:
    """The manifest as written by the last ingest."""
    return store.read_table(MANIFEST)


def summarise(manifest: pd.DataFrame) -> dict[str, Any]:
    """Store-wide settings and statistics derived from the manifest."""
    if manifest.empty:
        return {"cases": 0}
    labelled = manifest[manifest["labelled"]]
    return {
        "cases": int(len(manifest)),
        "cases_per_domain": {k: int(v) for k, v in manifest["domain"].value_counts().items()},
        "labelled": int(manifest["labelled"].sum()),
        "median_spacing_xyz": _median(manifest, ["spacing_x", "spacing_y", "spacing_z"]),
        "median_shape_zyx": _median(manifest, ["shape_z", "shape_y", "shape_x"]),
        "median_thorax_box_shape_zyx": _median(manifest, ["box_z", "box_y", "box_x"]),
        "lung_hu": _pooled_hu(labelled),
        "raw_bytes": int(manifest["raw_bytes"].sum()),
        "disk_bytes": int(manifest["disk_bytes"].sum()),
        "compression_ratio": float(manifest["raw_bytes"].sum() / manifest["disk_bytes"].sum()),
    }


def _row(attrs: dict[str, Any], group: Any, disk_bytes: int) -> dict[str, Any]:
    z0, z1, y0, y1, x0, x1 = attrs["thorax_box"]
    row = {k: attrs[k] for k in ("case_id", "domain", "labelled", "has_lesion")}
    row.update(zip(("shape_z", "shape_y", "shape_x"), attrs["shape"]))
    row.update(zip(("spacing_x", "spacing_y", "spacing_z"), attrs["spacing"]))
    row.update(box_z0=z0, box_z1=z1, box_y0=y0, box_y1=y1, box_x0=x0, box_x1=x1,
               box_z=z1 - z0, box_y=y1 - y0, box_x=x1 - x0)
    for key, prefix in (("lung_box", "lung"), ("air_box", "air")):
        row.update(zip((f"{prefix}_{e}" for e in ("z0", "z1", "y0", "y1", "x0", "x1")),
                       attrs.get(key) or [None] * 6))
    row.update({k: attrs.get(k) for k in ("lung_voxels", "lung_hu_mean", "lung_hu_std",
                                          "lung_hu_p005", "lung_hu_p995")})
    row["raw_bytes"] = int(sum(a.nbytes for _, a in group.arrays()))
    row["disk_bytes"] = disk_bytes
    row.update({f"source_{k}": attrs["sources"][k] for k in ("image", "lung", "lesion")})
    row["source_hash"] = attrs["committed"]["source_hash"]
    return row


def _median(table: pd.DataFrame, columns: list[str]) -> list[float]:
    return [float(np.median(table[c].to_numpy(dtype=float))) for c in columns]


def _pooled_hu(labelled: pd.DataFrame) -> dict[str, float] | None:
    """Voxel-weighted mean/std over all labelled lungs; percentiles as the median over cases."""
    if labelled.empty:
        return None
    n = labelled["lung_voxels"].to_numpy(dtype=float)
    mean = labelled["lung_hu_mean"].to_numpy(dtype=float)
    var = labelled["lung_hu_std"].to_numpy(dtype=float) ** 2
    pooled = float(np.average(mean, weights=n))
    pooled_var = float(np.average(var + (mean - pooled) ** 2, weights=n))
    return {"mean": pooled, "std": pooled_var ** 0.5,
            "p005": float(labelled["lung_hu_p005"].median()),
            "p995": float(labelled["lung_hu_p995"].median())}


def format_summary(url: str, manifest: pd.DataFrame) -> str:
    """The human-readable store summary printed by ``raylung info``."""
    s = summarise(manifest)
    if s["cases"] == 0:
        return f"{url}: empty store (0 cases)"
    lines = [
        f"store            {url}",
        f"cases            {s['cases']} ({_counts(s['cases_per_domain'])}), "
        f"{s['labelled']} labelled",
        f"shape z,y,x      median {_fmt(s['median_shape_zyx'], 0)}, "
        f"min {_fmt(manifest[['shape_z', 'shape_y', 'shape_x']].min(), 0)}, "
        f"max {_fmt(manifest[['shape_z', 'shape_y', 'shape_x']].max(), 0)}",
        f"thorax box z,y,x median {_fmt(s['median_thorax_box_shape_zyx'], 0)}",
        f"spacing x,y,z    median {_fmt(s['median_spacing_xyz'], 2)} mm",
        f"disk             {s['disk_bytes'] / 2**20:.1f} MiB "
        f"(raw {s['raw_bytes'] / 2**20:.1f} MiB, compression {s['compression_ratio']:.1f}x)",
    ]
    if s["lung_hu"]:
        hu = s["lung_hu"]
        lines.append(f"lung HU          mean {hu['mean']:.0f} sd {hu['std']:.0f}, "
                     f"p0.5 {hu['p005']:.0f}, p99.5 {hu['p995']:.0f}")
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def _fmt(values: Any, digits: int) -> str:
    return " x ".join(f"{float(v):.{digits}f}" for v in values)
