"""CycleGAN losses: least-squares adversarial, cycle consistency, identity, and their weighted sum.

Least squares rather than the log loss because its gradients do not vanish for fakes the
discriminator already rejects (Mao et al. 2017), which is what CycleGAN uses too. Each loss
is computed in fp32 whatever the networks' dtype: bf16 (on GPUs) keeps about 3 digits.
"""

from __future__ import annotations

import torch


def lsgan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """mean((D(fake) - 1)^2): the generator wants its fakes scored as real (1).

    >>> lsgan_generator_loss(torch.tensor([1.0, 0.0, 3.0]))
    tensor(1.6667)
    """
    return ((fake_logits.float() - 1) ** 2).mean()


def lsgan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2)); halved so D learns at G's pace.

    >>> lsgan_discriminator_loss(torch.tensor([0.0]), torch.tensor([2.0]))
    tensor(2.5000)
    """
    return 0.5 * (((real_logits.float() - 1) ** 2).mean() + (fake_logits.float() ** 2).mean())


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """mean |F(G(h)) - h|: a translated image must translate back to its original."""
    _check_same_shape(reconstructed, original)
    return (reconstructed.float() - original.float()).abs().mean()


def identity_loss(same: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """mean |G(p) - p|: an image already in G's target domain should pass through unchanged."""
    _check_same_shape(same, original)
    return (same.float() - original.float()).abs().mean()


# A G's mean |change| (images in [-1, 1]) up to which the diversity term's reward grows with
# the change: about half of what a G drawing the phantoms' disease changes (0.023 at 64 x 64).
# Without it the term's best is a G that changes nothing a discriminator can see, all of it
# noise: one claim arm stayed there for 1500 steps (mean change 0.0004).
DIVERSITY_FLOOR = 0.01


def diversity_loss(first: torch.Tensor, second: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """-mean|a - b| / (mean|a - x| + mean|b - x| + DIVERSITY_FLOOR) for two translations a, b
    of the same x under other noise: minus the share of G's change that depends on the noise
    (0: G ignores it; -1: large changes that never overlap). Scale-free above the floor, so it
    rewards varied disease, not more; below it, a change too small to see earns little.

    >>> x = torch.zeros(1, 1, 2, 2)
    >>> a, b = x.clone(), x.clone(); a[..., 0, 0] = 1.0; b[..., 1, 1] = 1.0
    >>> -diversity_loss(a, b, x), -diversity_loss(a, a, x)  # disjoint changes; the same one
    (tensor(0.9804), tensor(0.))
    >>> -diversity_loss(a / 1000, b / 1000, x)  # the same, too small to see
    tensor(0.0476)
    """
    _check_same_shape(first, second)
    _check_same_shape(first, source)
    first, second, source = first.float(), second.float(), source.float()
    change = (first - source).abs().mean() + (second - source).abs().mean()
    return -(first - second).abs().mean() / (change + DIVERSITY_FLOOR)


def generator_objective(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """sum over the terms present of weights[name] * terms[name]; weights come from the config.

    >>> generator_objective({"adv": torch.tensor(2.0), "cyc": torch.tensor(0.5)},
    ...                     {"adv": 1.0, "cyc": 10.0, "id": 5.0})
    tensor(7.)
    """
    if not terms:
        raise ValueError("generator_objective needs at least one loss term")
    missing = sorted(set(terms) - set(weights))
    if missing:
        raise ValueError(f"no weight for loss term(s) {missing}; weights given: {sorted(weights)}")
    weighted = [weights[name] * value for name, value in terms.items()]
    # Start from the first term so the sum keeps its device and dtype.
    return sum(weighted[1:], weighted[0])


def _check_same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    # Silent broadcasting of mismatched images would give a plausible but wrong loss.
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
