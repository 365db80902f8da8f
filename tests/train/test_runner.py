"""The driver side of a Ray Train run: how its data streams reach the workers."""

from __future__ import annotations

import numpy as np
import pytest
from ray.data.context import DataContext

from raylung.config import ConfigError, load_config
from raylung.data.pipeline import build_dataset
from raylung.train.runner import check_gan_crops, data_config, fit_gan, gan_shards

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
