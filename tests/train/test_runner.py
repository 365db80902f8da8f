"""The driver side of a Ray Train run: how its data streams reach the workers."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from ray.data.context import DataContext

from raylung.config import ConfigError, load_config
from raylung.data.pipeline import build_dataset
from raylung.store.manifest import read_manifest
from raylung.train.runner import can_validate, check_gan_crops, data_config, fit_gan, gan_shards
from raylung.train.seg_runner import fit_seg

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_worker_streams_keep_the_pipelines_order(gan_config):
    """Ray Train's default would take the global options, whose order is not kept, so a
    resumed run could see another sequence of batches than the run it continues."""
    config = gan_config("order")
    datasets = {"healthy": build_dataset(config, "train", [0], "healthy"),
                "pathological": build_dataset(config, "train", [0], "pathological")}
    assert not DataContext.get_current().execution_options.preserve_order
    chosen = data_config(datasets)
    for name in datasets:
        assert chosen._resolve_execution_options(name).preserve_order, name
    assert chosen._datasets_to_split == []  # each worker reads its own (runner.per_worker)


def test_what_validation_lacks_is_said_on_the_drivers_console(gan_config, phantom_store,
                                                            tmp_path, capsys):
    """The workers' stderr does not reach the console: a GAN run without labelled
    pathological val cases lost its translation and realism scores without a word."""
    cases = read_manifest(phantom_store)
    splits = tmp_path / "splits.csv"
    pd.DataFrame({"case_id": cases["case_id"],
                  "split": np.where(cases["domain"] == "healthy", "val", "train")}).to_csv(
        splits, index=False)
    assert can_validate(gan_config("val", f"data.splits_file={splits}"))
    assert capsys.readouterr().err.startswith(
        "raylung: GAN validation without translation and realism scores: ")
    assert not can_validate(gan_config("val"))  # every case in train
    assert capsys.readouterr().err.startswith("raylung: validation skipped: ")


def test_the_oracle_without_twins_fails_before_the_run(seg_config, phantom_store, tmp_path):
    """data.twin_p on a store without diseased twins trained the plain baseline silently."""
    store = tmp_path / "store"
    shutil.copytree(phantom_store.url, store)
    for twin in store.glob("cases/*/twin"):
        shutil.rmtree(twin)
    with pytest.raises(ConfigError, match=r"data.twin_p: no labelled healthy train case of "
                                          r"\S+ has a diseased twin"):
        fit_seg(seg_config("twins", f"data.store={store}", "data.twin_p=0.5"))


def test_the_gans_slices_pass_through_the_lung_the_segmenters_not_all(gan_config):
    config = gan_config("box", "data.box_slices=1", "data.samples_per_epoch=16")
    def slices_with_lung(dataset) -> np.ndarray:
        lung = np.concatenate([b["lung"] for b in dataset.iter_batches(batch_size=16)])
        return lung.reshape(len(lung), -1).any(axis=1)

    for name, shards in gan_shards(config, [0], 1).items():
        assert slices_with_lung(shards[0]).all(), name
    seg = build_dataset(config, "train", [0], "healthy", labelled_only=True)
    assert not slices_with_lung(seg).all()


@pytest.mark.parametrize(("crop", "layers", "smallest"), [
    (["data.mode=patch3d", "data.patch_size=[8,24,24]"], 2, 12),
    (["data.slice_size=[32,32]"], 4, 48)])
def test_crops_too_small_for_the_discriminator_fail_before_the_run(crop, layers, smallest):
    config = load_config(None, [*crop, f"gan.disc_layers={layers}", "data.store=/nowhere"])
    with pytest.raises(ConfigError, match=rf"^data.\w+=\[[\d, ]+\] is too small for "
                       rf"gan.disc_layers={layers}: .* at least {smallest} per axis$"):
        fit_gan(config)
    check_gan_crops(load_config(None, [*crop, f"gan.disc_layers={layers - 1}"]))


@pytest.mark.parametrize(("fit", "overrides", "message"), [
    ("gan", ["data.slice_size=[30,30]"], r"data.slice_size=\[30, 30\] must be a multiple of 4 "
                                         r"on every axis: G halves it 2 times$"),
    ("seg", ["data.slice_size=[36,36]", "seg.strides=[2,2,2]"],
     r"data.slice_size=\[36, 36\] must be a multiple of 8 on every axis: the U-Net's strides "
     r"\[2, 2, 2\] divide it$")])
def test_crops_the_networks_cannot_take_fail_before_the_run(fit, overrides, message):
    """They failed inside every worker, after every restart."""
    config = load_config(None, [*overrides, "seg.channels=[4,8,16,32]", "data.store=/nowhere"])
    with pytest.raises(ConfigError, match=message):
        (fit_gan if fit == "gan" else fit_seg)(config)


@pytest.mark.parametrize(("fit", "overrides", "named"), [
    ("gan", ["gan.steps=100", "gan.checkpoint_every=50"], "gan.steps=100"),
    ("gan", ["gan.steps=120", "gan.checkpoint_every=40"], "gan.checkpoint_every=40"),
    ("seg", ["seg.steps=120", "seg.decay_start=60", "data.samples_per_epoch=40",
             "data.batch_size=4"], "the steps of an epoch"),
    ("seg", ["seg.steps=100", "seg.decay_start=50"], "seg.steps=100")])
def test_checkpoints_inside_an_optimiser_step_fail_before_the_run(fit, overrides, named):
    """With 3 micro-batches per optimiser step a checkpoint after 100 (or 40, or an epoch of
    10) would save a step half-accumulated, and the resumed run would differ."""
    config = load_config(None, [*overrides, "deepspeed.grad_accum=3", "data.store=/nowhere"])
    with pytest.raises(ConfigError, match=rf"^{named}.* must be a multiple of "
                                          r"deepspeed.grad_accum=3: a checkpoint there"):
        (fit_gan if fit == "gan" else fit_seg)(config)


@pytest.mark.parametrize(("fit", "overrides", "message"), [
    ("gan", [], r"the GAN run needs 5 CPUs \(workers, crop readers\) but the cluster has 2 "),
    ("seg", ["seg.generator={generator}", "data.slice_size=[32,32]"],
     r"the U-Net run needs 4 CPUs \(workers, crop readers and GAN actors\) but the cluster "),
    ("seg", [], r"the U-Net run needs 3 CPUs \(workers, crop readers\)")])
def test_a_run_the_cluster_cannot_hold_fails_before_it_waits_forever(fit, overrides, message,
                                                                     generator_file,
                                                                     phantom_store):
    """The defaults' crop readers (2 actors of 1 CPU per stream) beside a 1-CPU worker do not
    fit 2 CPUs: Ray Data waited for the missing actors without end."""
    overrides = [o.format(generator=generator_file) for o in overrides]
    config = load_config(None, [*overrides, f"data.store={phantom_store.url}"])
    with pytest.raises(ConfigError, match=rf"^scaling: {message}.*cluster/laptop.yaml"):
        (fit_gan if fit == "gan" else fit_seg)(config)


def test_a_cluster_named_by_address_may_grow_and_is_not_checked():
    """On an autoscaling cluster (cluster/gpu.yaml: ray.address auto) the nodes up now are not
    what the run will get."""
    from raylung.train.runner import check_placement

    check_placement(load_config(None, ["ray.address=auto", "scaling.num_workers=64"]),
                    "GAN run")
    with pytest.raises(ConfigError, match="set ray.address"):
        check_placement(load_config(None, ["scaling.num_workers=64"]), "GAN run")
