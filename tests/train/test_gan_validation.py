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


def test_a_generator_with_noise_is_validated_on_the_same_fields_each_time(gan_config):
    config = gan_config("noise", "data.split_fractions=[0.5,0.5,0]", "gan.val_samples=2",
                        "gan.residual=false", "gan.noise_channels=1")
    torch.manual_seed(0)
    g = Generators(config).g
    validator = GanValidator(config)
    state = torch.get_rng_state()
    first, second = validator(g), validator(g)
    assert first["val_change_in_lung_hu"] == second["val_change_in_lung_hu"]
    assert torch.equal(torch.get_rng_state(), state), "validation's seed leaked into training"
