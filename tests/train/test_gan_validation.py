"""G's validation on held-out healthy samples, with networks of the dtypes a GPU run has."""


import matplotlib.image
import torch

from raylung.train.cyclegan import Generators
from raylung.train.gan_validation import GanValidator


def test_validates_the_fp32_average_g_beside_a_bf16_f(gan_config, tmp_path):
    """F only adds its column F(G(h)) to the grid, in its own dtype; G's scores are G's."""
    config = gan_config("dtypes", "data.split_fractions=[0.5,0.5,0]", "gan.val_samples=2",
                        "gan.residual=false")  # an untrained residual G changes nothing
    torch.manual_seed(0)
    gens = Generators(config)
    validator = GanValidator(config)
    metrics = validator(gens.g, gens.f.to(torch.bfloat16), tmp_path / "with_f")
    assert metrics == validator(gens.g, None, tmp_path / "without_f")
    assert metrics["val_surround_l1_hu"] > 0 and 0 <= metrics["val_wall_dice"] < 1
    widths = [matplotlib.image.imread(tmp_path / run / "validation.png").shape[1]
              for run in ("with_f", "without_f")]
    assert widths[0] > widths[1]  # one more column


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
