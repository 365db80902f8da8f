"""The zarr case store: exact round trip, commit-last semantics, atomic side files."""

from __future__ import annotations

import numpy as np
import pytest

from raylung.store.case_store import CaseStore, StoreError


@pytest.fixture
def store(tmp_path) -> CaseStore:
    created = CaseStore(str(tmp_path / "s"))
    created.create()
    return created


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(-1024, 2000, (9, 20, 24)).astype(np.int16),
            "lung": (rng.random((9, 20, 24)) > 0.5).astype(np.uint8)}


def test_round_trip_exact(store):
    arrays = _arrays()
    store.write_case("c1", arrays, {"domain": "healthy"}, {"source_hash": "h"}, (4, 8, 8), 3)
    group = store.open_case("c1")
    for name, data in arrays.items():
        assert group[name].dtype == data.dtype
        assert group[name].chunks == (4, 8, 8)
        assert np.array_equal(group[name][...], data)
    assert group.attrs["raylung"]["domain"] == "healthy"
    assert store.case_ids() == ["c1"]
    assert store.committed("c1") == {"source_hash": "h"}


@pytest.mark.parametrize(("shards", "stored", "files"),
                         [((8, 16, 16), (8, 16, 16), 8), ((16, 32, 32), (12, 24, 24), 1)])
def test_sharded_volumes_read_the_same_through_tensorstore_and_zarr(store, tmp_path, shards,
                                                                    stored, files):
    """Shards are clipped to the volume (a multiple of the chunk); TensorStore's crops equal
    zarr-python's, and one file per shard is all there is on disk."""
    arrays = _arrays()
    store.write_case("c1", arrays, {}, {"source_hash": "h"}, (4, 8, 8), 3, shards)
    group = store.open_case("c1")
    assert (group["image"].shards, group["image"].chunks) == (stored, (4, 8, 8))
    window = (slice(3, 9), slice(5, 17), slice(2, 23))
    for name, data in arrays.items():
        volume = store.volume("c1", name)
        assert volume.shape == data.shape and volume.dtype == data.dtype
        assert np.array_equal(volume[window], group[name][window])
        assert np.array_equal(volume[...], data)
    assert len(list((tmp_path / "s" / "cases" / "c1" / "image" / "c").glob("*/*/*"))) == files


def test_empty_table_round_trips(store):
    store.write_case("c1", {"lung_centres": np.zeros((0, 3), np.int32)}, {}, {"source_hash": "h"},
                     (4, 8, 8), 3, (8, 16, 16))
    assert store.volume("c1", "lung_centres")[...].shape == (0, 3)


def test_uncommitted_case_is_invisible(store):
    store.group("r+")["cases"].create_group("half")
    assert store.case_ids() == []
    with pytest.raises(StoreError, match="case 'half' is missing or incomplete"):
        store.open_case("half")


def test_failed_write_leaves_no_group(store, tmp_path):
    bad = {"image": _arrays()["image"], "lung": object()}
    with pytest.raises(AttributeError, match="ndim"):  # after the image was written
        store.write_case("c1", bad, {}, {"source_hash": "h"}, (4, 8, 8), 3)
    assert not (tmp_path / "s" / "cases" / "c1").exists()


def test_a_case_whose_metadata_was_cut_short_is_unfinished_and_written_again(store, tmp_path):
    """It was a JSON error blamed on the case's source scan, and every later ingest failed."""
    for case in ("c1", "c2"):
        store.write_case(case, _arrays(), {}, {"source_hash": "h"}, (4, 8, 8), 3)
    meta = tmp_path / "s" / "cases" / "c1" / "zarr.json"
    meta.write_text(meta.read_text()[:100])
    assert store.committed("c1") is None and store.case_ids() == ["c2"]
    store.write_case("c1", _arrays(), {}, {"source_hash": "h"}, (4, 8, 8), 3)
    assert store.case_ids() == ["c1", "c2"]


def test_rewrite_replaces_old_arrays(store):
    store.write_case("c1", _arrays(0), {}, {"source_hash": "a"}, (4, 8, 8), 3)
    store.write_case("c1", {"image": _arrays(1)["image"]}, {}, {"source_hash": "b"}, (4, 8, 8), 3)
    assert list(store.open_case("c1").array_keys()) == ["image"]
    assert store.committed("c1") == {"source_hash": "b"}


def test_side_files_atomic_and_readable(store, tmp_path):
    store.write_bytes("summary.json", b"{}")
    assert store.read_bytes("summary.json") == b"{}"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["cases", "summary.json", "zarr.json"]


def test_missing_side_file_names_it(tmp_path):
    with pytest.raises(StoreError, match=r"s/manifest.parquet: not found"):
        CaseStore(str(tmp_path / "s")).read_bytes("manifest.parquet")
