"""The exported generator reloads (weights_only) and predicts identically."""

from __future__ import annotations

import torch

from raylung.config import load_config
from raylung.networks import build_generator, export_generator, load_generator


def test_export_round_trip(tmp_path):
    config = load_config(None, ["gan.width=4", "gan.n_blocks=1", "data.context_slices=1"])
    generator = build_generator(config).eval()
    path = export_generator(generator, config, tmp_path / "g.pt")
    reloaded, saved = load_generator(path)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(generator(x), reloaded(x))
    assert saved == config
    assert not list(tmp_path.glob("*.tmp"))
