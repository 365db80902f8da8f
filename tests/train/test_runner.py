"""The driver side of a Ray Train run: how its data streams reach the workers."""

from __future__ import annotations

import pytest
from ray.data.context import DataContext

from raylung.data.pipeline import build_dataset
from raylung.train.runner import data_config

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
