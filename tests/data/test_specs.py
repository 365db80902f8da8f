"""Slice levels: both domains' slices come from the same anatomy (the lung's z range)."""

from __future__ import annotations

import numpy as np

from raylung.config import DataConfig
from raylung.data.specs import draw_specs
from raylung.store.manifest import read_manifest


def test_unlabelled_slices_come_from_the_same_levels_as_labelled_ones(phantom_store):
    """Pathological cases without masks draw slices from the air inside the body, so their
    levels relative to the (hidden) lung range match the labelled healthy ones: a
    discriminator cannot tell the domains apart by slice level."""
    manifest = read_manifest(phantom_store)
    cases = manifest.assign(labelled=manifest["domain"] == "healthy")  # hide the sick masks
    cfg = DataConfig(samples_per_epoch=2000, box_slices=0)  # the GAN's streams
    specs = draw_specs(cases, {}, cfg, epoch=0, stream="levels")
    rows = manifest.set_index("case_id")
    levels = {"healthy": [], "pathological": []}
    for spec in specs:
        row = rows.loc[spec["case_id"]]
        levels[spec["domain"]].append((spec["z"] - row.lung_z0) / (row.lung_z1 - row.lung_z0))
    healthy, sick = (np.asarray(levels[d]) for d in ("healthy", "pathological"))
    assert healthy.min() >= 0 and healthy.max() < 1
    assert sick.min() >= -0.1 and sick.max() < 1.1  # the air range: within a slice or two
    assert abs(healthy.mean() - sick.mean()) < 0.05 and abs(healthy.std() - sick.std()) < 0.05
    thorax = draw_specs(cases.drop(columns=[c for c in cases if c.startswith("air_")]), {},
                        cfg, epoch=0, stream="levels")   # a store ingested before air boxes
    assert all(rows.loc[s["case_id"]].box_z0 <= s["z"] < rows.loc[s["case_id"]].box_z1
               for s in thorax)


def test_a_share_of_the_segmenters_slices_lies_anywhere_in_the_thorax(phantom_store):
    """Whole scans hold slices without lung: ``box_slices`` of the slices come from there too."""
    manifest = read_manifest(phantom_store)
    rows = manifest.set_index("case_id")
    specs = draw_specs(manifest, {}, DataConfig(samples_per_epoch=2000, box_slices=0.5), 0, "box")
    anywhere = np.array([not s["lung_centred"] for s in specs])
    assert abs(anywhere.mean() - 0.5) < 4 * np.sqrt(0.25 / 2000)
    lung = np.array([rows.loc[s["case_id"]].lung_z0 <= s["z"] < rows.loc[s["case_id"]].lung_z1
                     for s in specs])
    assert lung[~anywhere].all() and not lung[anywhere].all()
    assert all(rows.loc[s["case_id"]].box_z0 <= s["z"] < rows.loc[s["case_id"]].box_z1
               for s in specs)


def test_unlabelled_patches_are_centred_on_the_air_box_as_often_as_labelled_ones_on_lung(
        phantom_store):
    manifest = read_manifest(phantom_store)
    cases = manifest.assign(labelled=manifest["domain"] == "healthy")
    cfg = DataConfig(mode="patch3d", patch_size=(8, 16, 16), samples_per_epoch=600)
    specs = draw_specs(cases, {}, cfg, epoch=0, stream="patches")
    rows = cases.set_index("case_id")
    sick = [s for s in specs if s["domain"] == "pathological"]
    share = np.mean([s["lung_centred"] for s in sick])
    assert abs(share - cfg.lung_centre_fraction) < 0.07
    for spec in (s for s in sick if s["lung_centred"]):   # a patch starts inside the volume,
        row = rows.loc[spec["case_id"]]                     # so its centre may sit up to half
        for axis, n in zip("zyx", cfg.patch_size):          # a patch off the air box
            centre = spec[axis] + n // 2
            assert row[f"air_{axis}0"] - n // 2 <= centre <= row[f"air_{axis}1"] + n // 2
