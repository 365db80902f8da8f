"""The Ray Data stream end to end: replay, epochs, disjoint shards in Ray Train workers."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import psutil
import pytest
import ray.train
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from raylung.config import load_config
from raylung.data.pipeline import build_dataset, build_shards
from raylung.store.case_store import CaseStore
from raylung.store.manifest import write_manifest
from raylung.train.runner import data_config, per_worker
from raylung.train.streams import shard_batches

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _config(store, *extra):
    return load_config(None, [f"data.store={store.url}", "data.mode=patch3d",
                              "data.patch_size=[8,24,24]", "data.samples_per_epoch=24",
                              "data.batch_size=4", "data.split_fractions=[1,0,0]",
                              "data.reader_cpus=0.5", *extra])


def _collect(dataset):
    batches = list(dataset.iter_batches(batch_size=4, batch_format="numpy"))
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_twins_replace_a_share_of_healthy_images_with_their_diseased_twin(phantom_store):
    """data.twin_p (the oracle of claim.py): the twin's crop with the same lung mask. The
    twin only adds opacities, so no voxel gets darker."""
    plain, oracle = (_collect(build_dataset(_config(phantom_store, "data.augment.enabled=false",
                                                    f"data.twin_p={p}"), "train", [0],
                                            "healthy", labelled_only=True)) for p in (0, 1))
    assert all("twin" in phantom_store.open_case(c) for c in set(plain["case_id"]))
    assert np.array_equal(plain["lung"], oracle["lung"])
    assert (oracle["image"] != plain["image"]).any()
    assert (oracle["image"] >= plain["image"]).all()
    assert oracle["synthetic"].all() and "synthetic" not in plain


def test_replay_identical_and_epochs_differ(phantom_store):
    cfg = _config(phantom_store)
    first = _collect(build_dataset(cfg, "train", [0, 1]))
    again = _collect(build_dataset(cfg, "train", [0, 1]))
    for key in ("image", "lung", "surround", "position", "seed"):
        assert np.array_equal(first[key], again[key]), key
    epoch0, epoch1 = first["epoch"] == 0, first["epoch"] == 1
    assert epoch0.sum() == epoch1.sum() == 24
    assert not np.array_equal(first["image"][epoch0], first["image"][epoch1])


def test_domain_and_labelled_filters(phantom_store):
    cfg = _config(phantom_store)
    healthy = _collect(build_dataset(cfg, "train", [0], domain="healthy"))
    assert set(healthy["domain"]) == {"healthy"}
    sick = _collect(build_dataset(cfg, "train", [0], domain="pathological"))
    assert set(sick["domain"]) == {"pathological"}
    with pytest.raises(ValueError, match="no .*cases in split 'val'"):
        build_dataset(_config(phantom_store, "data.split_fractions=[1,0,0]"), "val", [0])


def test_a_store_without_cases_is_one_line(tmp_path):
    """Every case failed at ingest: the manifest has no rows (and no columns)."""
    store = CaseStore(str(tmp_path / "store"))
    store.create()
    write_manifest(store)
    with pytest.raises(ValueError, match=r"store: the store holds no cases \(did every case fail "
                                         r"at ingest\? see its ingest_report.csv\)$"):
        build_dataset(_config(store), "train", [0])


@pytest.mark.slow
def test_two_train_workers_each_read_their_own_fixed_shard(phantom_store, tmp_path):
    """Rank r of 2 gets exactly the samples r, r + 2, ... of each epoch, in order: which
    worker trains on which sample never depends on timing."""
    def record_shard(config):  # nested so Ray pickles it by value (tests/ is not a package)
        seen = []
        for batch in shard_batches("train", 4):
            assert batch["image"].dtype.is_floating_point
            seen += [[int(e), int(i)] for e, i in zip(batch["epoch"], batch["index"])]
        rank = ray.train.get_context().get_world_rank()
        Path(config["out"], f"rank{rank}.json").write_text(json.dumps(seen))

    cfg = _config(phantom_store, "scaling.num_workers=2")
    datasets = per_worker({"train": build_shards(cfg, "train", [0, 1], world=2)})
    trainer = TorchTrainer(
        record_shard, train_loop_config={"out": str(tmp_path)},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        datasets=datasets, dataset_config=data_config(datasets),
        run_config=RunConfig(name="shards", storage_path=str(tmp_path / "runs")),
    )
    trainer.fit()
    for rank in (0, 1):
        seen = [tuple(x) for x in json.loads((tmp_path / f"rank{rank}.json").read_text())]
        assert seen == [(e, i) for e in (0, 1) for i in range(rank, 24, 2)]


def test_corrupt_chunk_fails_the_stream_naming_the_case(phantom_store, tmp_path):
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(phantom_store.url, copy)
    for chunk in (copy / "cases").glob("*/image/c/*/*/*"):
        chunk.write_bytes(b"\x00garbage" * 4)
    cfg = load_config(None, [f"data.store={copy}", "data.mode=patch3d", "data.patch_size=[8,24,24]",
                             "data.samples_per_epoch=8", "data.split_fractions=[1,0,0]",
                             "data.reader_cpus=0.5"])
    with pytest.raises(Exception, match=r"cases/phantom_\d+: cannot read the crop at z,y,x="):
        _collect(build_dataset(cfg, "train", [0]))


def test_driver_memory_and_start_do_not_grow_with_epochs(phantom_store):
    """Each epoch's specs are drawn by its own read task: building and starting a stream of
    200 epochs of 10,000 samples costs the driver what one epoch does."""
    cfg = _config(phantom_store, "data.samples_per_epoch=10000")

    def driver_rss_after_first_batch(epochs: int) -> int:
        batches = iter(build_dataset(cfg, "train", range(epochs)).iter_batches(batch_size=4))
        next(batches)
        batches.close()  # stops the stream
        gc.collect()
        return psutil.Process().memory_info().rss

    driver_rss_after_first_batch(1)  # imports, Ray Data's first plan
    one = driver_rss_after_first_batch(1)
    many = driver_rss_after_first_batch(200)
    assert many - one < 50 * 2**20, f"{(many - one) / 2**20:.0f} MiB more for 200 epochs"


def test_a_run_prepares_scans_as_its_store_was_ingested(tmp_path):
    """A store ingested at 0.8 x 0.8 x 1 mm with lobe labels: training, validation and the
    exported model take that grid and those labels, not the job's defaults (the model then
    segmented every scan on another grid, and validation scored against whole label maps)."""
    from raylung.config import ConfigError, dump_config
    from raylung.data.pipeline import with_store_ingest

    (tmp_path / "store").mkdir()
    ingested = load_config(None, ["ingest.spacing_mm=[0.8,0.8,1]", "ingest.lung_labels=[10,11]",
                                  "ingest.chunks=[8,16,16]"])
    (tmp_path / "store" / "raylung_config.yaml").write_text(dump_config(ingested))
    job = [f"data.store={tmp_path / 'store'}", "ingest.chunks=[4,8,8]"]  # a site key: stays
    adopted = with_store_ingest(load_config(None, job))
    assert (adopted.ingest.spacing_mm, adopted.ingest.lung_labels) == ((0.8, 0.8, 1.0), [10, 11])
    assert adopted.ingest.chunks == (4, 8, 8)
    with pytest.raises(ConfigError, match=r"^ingest.spacing_mm=\[1.0, 1.0, 1.0\]: the store .* "
                                          r"was ingested with \[0.8, 0.8, 1.0\], which its runs "
                                          r"use; drop the override$"):
        with_store_ingest(load_config(None, [*job, "ingest.spacing_mm=[1,1,1]"]))
