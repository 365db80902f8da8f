"""The networks a config describes: the defaults fit together, and the exported generator
reloads (weights_only, from a path or a URL) and predicts identically."""

from __future__ import annotations

import pytest
import torch

from raylung.config import load_config
from raylung.io.write import write_bytes
from raylung.networks import (build_generator, build_segmenter, export_config, export_generator,
                              load_generator, network_shape)
from raylung.train.cyclegan import Discriminators


def test_export_round_trip(tmp_path):
    config = load_config(None, ["gan.width=4", "gan.n_blocks=1", "data.context_slices=1"])
    generator = build_generator(config).eval()
    with torch.no_grad():  # weights unlike a new G's (an untrained residual G is the identity)
        for parameter in generator.parameters():
            parameter.normal_(0.0, 0.1)
    path = export_generator(generator, config, tmp_path / "g.pt")
    reloaded, saved = load_generator(path)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(generator(x), reloaded(x))
        assert not torch.allclose(build_generator(config).eval()(x), reloaded(x))
    assert saved == config
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]  # no temporary file left
    assert export_config(path, "generator_h2p") == config  # what a batch job's driver reads
    with pytest.raises(ValueError, match=r"g.pt: not a raylung segmenter export \(found "
                                         r"generator_h2p\)$"):
        export_config(path, "segmenter")


@pytest.mark.parametrize("mode", ["slice2d", "patch3d"])
def test_the_default_networks_take_the_default_crops(mode):
    """The defaults fit together: G keeps the crop's shape, the discriminators see a patch map,
    the U-Net gives two channels of the crop's size (a default changed alone breaks this)."""
    config = load_config(None, [f"data.mode={mode}"])
    size = config.data.slice_size if mode == "slice2d" else config.data.patch_size
    x = torch.zeros(1, network_shape(config)[1], *size)
    with torch.no_grad():
        assert build_generator(config)(x).shape == x.shape
        assert min(Discriminators(config).d_p(x).shape[2:]) >= 1
        assert build_segmenter(config)(x).shape == (1, 2, *size)


def test_an_export_loads_from_object_storage(tmp_path, s3_options):
    """``seg.generator`` may be a URL (a train-gan run on object storage exports there): the
    GAN actors load it with the run's storage options."""
    config = load_config(None, ["gan.width=4", "gan.n_blocks=1"])
    path = export_generator(build_generator(config).eval(), config, tmp_path / "g.pt")
    write_bytes("s3://raylung-test/runs/g.pt", path.read_bytes(), s3_options)
    remote, _ = load_generator("s3://raylung-test/runs/g.pt", s3_options)
    local, _ = load_generator(path)
    for (name, a), (_, b) in zip(local.state_dict().items(), remote.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match=r"^s3://raylung-test/runs/none.pt: exported model not "
                                         r"found$"):
        load_generator("s3://raylung-test/runs/none.pt", s3_options)
