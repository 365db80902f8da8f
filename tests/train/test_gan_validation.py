"""G's validation on held-out healthy samples, with networks of the dtypes a GPU run has."""

import math

import torch

from raylung.train.cyclegan import Generators
from raylung.train.gan_validation import GanValidator


def test_validates_the_fp32_average_g_beside_a_bf16_f(gan_config, tmp_path):
    config = gan_config("dtypes", "data.split_fractions=[0.5,0.5,0]", "gan.val_samples=2")
    torch.manual_seed(0)
    gens = Generators(config)
    metrics = GanValidator(config)(gens.g, gens.f.to(torch.bfloat16), tmp_path)
    assert math.isfinite(metrics["val_surround_l1_hu"]) and 0 <= metrics["val_wall_dice"] <= 1
    assert (tmp_path / "validation.png").stat().st_size > 1000
