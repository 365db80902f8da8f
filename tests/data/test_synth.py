"""The GAN stage of the data plane: replayable, mask-keeping, one generator load per actor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raylung.config import load_config
from raylung.data.pipeline import build_dataset
from raylung.data.specs import chosen_for_synthesis
from raylung.data.synth import GanAugment, add_synthesis, check_generator
from raylung.networks import export_generator, load_generator
from raylung.train.cyclegan import Generators

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _config(store, generator, *extra):
    return load_config(None, [f"data.store={store.url}", "data.slice_size=[32,32]",
                              "data.samples_per_epoch=16", "data.batch_size=4",
                              "data.split_fractions=[1,0,0]", "data.reader_cpus=0.25",
                              "data.read_concurrency=1", f"seg.generator={generator}",
                              "seg.synth_cpus=0.25", *extra])


def _collect(dataset):
    batches = list(dataset.iter_batches(batch_size=4, batch_format="numpy"))
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_p_synth_zero_is_bit_identical_to_no_gan_stage(phantom_store, generator_file):
    config = _config(phantom_store, generator_file, "seg.p_synth=0")
    plain = _collect(build_dataset(config, "train", [0], labelled_only=True))
    staged = _collect(add_synthesis(build_dataset(config, "train", [0], labelled_only=True),
                                    config))
    assert not staged["synthetic"].any()
    for key, values in plain.items():
        assert np.array_equal(values, staged[key]), key


def test_synthetic_samples_keep_masks_are_flagged_and_are_g_of_h(phantom_store, generator_file):
    config = _config(phantom_store, generator_file, "seg.p_synth=0.5", "seg.synth_actors=2")
    plain = _collect(build_dataset(config, "train", [0], labelled_only=True))
    staged = _collect(add_synthesis(build_dataset(config, "train", [0], labelled_only=True),
                                    config))
    expected = np.array([d == "healthy" and chosen_for_synthesis(int(s), 0.5)
                         for d, s in zip(plain["domain"], plain["seed"])])
    assert 0 < expected.sum() < len(expected)
    assert np.array_equal(staged["synthetic"], expected)
    assert np.array_equal(staged["lung"], plain["lung"])
    assert np.array_equal(staged["image"][~expected], plain["image"][~expected])
    generator, _ = load_generator(generator_file)
    with torch.no_grad():
        translated = generator(torch.from_numpy(plain["image"][expected])).numpy()
    assert np.allclose(staged["image"][expected], translated, atol=1e-5)
    assert not np.allclose(translated, plain["image"][expected], atol=0.1)
    assert set(staged["generator_loads"]) == {1}, "each actor loads the generator once"


@pytest.mark.parametrize(("override", "named"), [
    ("data.context_slices=1", "data.context_slices=0, this job uses 1"),
    ("data.slice_size=[64,64]", r"data.slice_size=\[32, 32\], this job uses \[64, 64\]"),
    ("ingest.spacing_mm=[1,1,1]", r"ingest.spacing_mm=\[1.0, 1.0, 2.0\], this job uses "),
    ("data.seed=1", "data.seed=0, this job uses 1")])  # another split: G's cases in val/test
def test_a_generator_trained_on_other_samples_or_another_split_is_refused(generator_file,
                                                                         override, named):
    same = [f"seg.generator={generator_file}", "data.slice_size=[32,32]"]
    with pytest.raises(ValueError, match=rf"generator_h2p.pt: generator trained with {named}"):
        check_generator(load_config(None, [*same, override]))
    check_generator(load_config(None, same))


def test_a_generator_from_another_store_may_use_its_own_split(generator_file):
    check_generator(load_config(None, [f"seg.generator={generator_file}", "data.seed=1",
                                       "data.slice_size=[32,32]", "data.store=/another/store"]))


def test_a_generator_with_noise_draws_each_samples_fields_from_its_seed(tmp_path):
    config = load_config(None, ["gan.width=4", "gan.n_blocks=1", "gan.residual=false",
                                "gan.noise_channels=1"])
    torch.manual_seed(0)
    path = export_generator(Generators(config).g, config, tmp_path / "generator_h2p.pt")
    image = np.random.default_rng(0).uniform(-1, 1, (1, 1, 32, 32)).astype(np.float32)
    batch = {"image": np.repeat(image, 3, axis=0), "seed": np.array([5, 5, 6]),
             "labelled": np.ones(3, bool), "domain": np.array(["healthy"] * 3)}
    first = GanAugment(str(path), 1.0, use_gpu=False)(dict(batch))["image"]
    again = GanAugment(str(path), 1.0, use_gpu=False)(dict(batch))["image"]
    assert np.array_equal(first, again), "a restarted actor must replay the same samples"
    assert np.array_equal(first[0], first[1]) and not np.allclose(first[0], first[2])


def test_the_oracles_twins_are_not_translated_again_and_draw_apart_from_g(generator_file):
    """With data.twin_p and seg.p_synth both set, a twin (already diseased) skips G, and the
    two draws are independent: G takes its share of the samples that are not twins."""
    seeds = np.arange(400)
    twins = np.array([chosen_for_synthesis(int(s), 0.5, oracle=True) for s in seeds])
    batch = {"seed": seeds, "labelled": np.ones(400, bool), "domain": np.array(["healthy"] * 400),
             "image": np.zeros((400, 1, 32, 32), np.float32), "synthetic": twins}
    staged = GanAugment(str(generator_file), 0.5, use_gpu=False)(dict(batch))
    by_g = staged["synthetic"] & ~twins
    assert not (staged["image"][twins] != 0).any()  # twins untouched
    assert 0.35 < by_g.sum() / (~twins).sum() < 0.65 and 0.35 < twins.mean() < 0.65
