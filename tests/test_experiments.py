"""experiments/: the shipped experiment file holds the settings the claim measured, sets no
scaling or storage key, and layers under every cluster/ file."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from raylung.cli.demo import demo_overrides
from raylung.config import SITE_KEYS, flat_items, load_config, read_yaml_tree

ROOT = Path(__file__).resolve().parents[1]
CPU_SCALE = ROOT / "experiments" / "cpu_scale.yaml"


def _settings() -> dict:
    return dict(flat_items(read_yaml_tree(CPU_SCALE)))


@pytest.mark.parametrize("site", ["laptop.yaml", "gpu.yaml"])
def test_it_sets_the_experiment_and_the_cluster_file_the_rest(site):
    assert not set(_settings()) & SITE_KEYS
    config = load_config([CPU_SCALE, ROOT / "cluster" / site])
    assert config.data.slice_size == (64, 64) and config.gan.noise_channels == 1


def test_its_settings_are_the_claims(monkeypatch, tmp_path):
    """The README recommends it for CPU runs because benchmarks/claim.py's full run, with
    these settings, met the claim's targets."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    claim = importlib.import_module("claim")
    measured = load_config(None, [*claim._base(tmp_path, *claim.SCALES["full"], 0),
                                  *claim.GAN_ARMS["default"]])
    shipped = load_config(CPU_SCALE)
    for key in _settings():
        section, name = key.split(".")
        assert getattr(getattr(shipped, section), name) == \
            getattr(getattr(measured, section), name), key


def test_the_demo_shares_its_scale():
    """The demo trains fewer steps of the same networks on the same slices (and its G has no
    noise: README, "The shape-aware CycleGAN")."""
    demo = load_config(None, demo_overrides(Path("demo_out")))
    shipped = load_config(CPU_SCALE)
    for key in _settings():
        section, name = key.split(".")
        if name in ("steps", "decay_start", "noise_channels", "lambda_diversity"):
            continue
        assert getattr(getattr(demo, section), name) == getattr(getattr(shipped, section), name)
