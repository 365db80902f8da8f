"""The shape-aware CycleGAN: its two pairs of networks and one training step (README, "The
shape-aware CycleGAN").

G (healthy -> pathological) and F (pathological -> healthy) form one DeepSpeed engine, D_P and
D_H the other. The discriminators are frozen during the generator step: with ZeRO-2 an unfrozen
discriminator fails ("gradient computed twice"), with ZeRO-1 it silently collects the
generator's gradients (deepspeedai/DeepSpeed#4923).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from raylung.config import Config
from raylung.losses.gan import (cycle_loss, diversity_loss, generator_objective, identity_loss,
                                lsgan_discriminator_loss, lsgan_generator_loss)
from raylung.losses.surround import surround_l1
from raylung.models.discriminator import build_discriminator
from raylung.networks import build_generator, network_shape
from raylung.train.image_pool import ImagePool


class Generators(nn.Module):
    """``g``: healthy -> pathological, ``f``: pathological -> healthy."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.g = build_generator(config)
        self.f = build_generator(config, noise=False)


class Discriminators(nn.Module):
    """``d_p`` judges pathological images, ``d_h`` healthy ones."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        dims, channels = network_shape(config)
        gan = config.gan
        self.d_p = build_discriminator(dims, channels, gan.disc_width, gan.disc_layers)
        self.d_h = build_discriminator(dims, channels, gan.disc_width, gan.disc_layers)


@dataclass
class GanBatch:
    """One step's input: healthy images with their surround band, and pathological images."""

    healthy: torch.Tensor
    surround: torch.Tensor
    pathological: torch.Tensor

    def to(self, dtype: torch.dtype, device: torch.device) -> GanBatch:
        """The batch on ``device`` in ``dtype`` (bf16 engines take bf16 inputs)."""
        return GanBatch(*(t.to(device=device, dtype=dtype)
                          for t in (self.healthy, self.surround, self.pathological)))


def loss_weights(config: Config) -> dict[str, float]:
    """The generator objective's weights, by term name."""
    gan = config.gan
    return {"adv": gan.lambda_adv, "cyc": gan.lambda_cyc, "id": gan.lambda_id,
            "surround": gan.lambda_surround, "div": gan.lambda_diversity}


def generator_step(
        gens: Any, discs: Any, batch: GanBatch, weights: dict[str, float],
) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """One optimiser step of G and F; returns the loss terms and the (detached) fakes."""
    _set_trainable(discs.module, False)
    g, f = gens.module.g, gens.module.f
    fake_p, fake_h = g(batch.healthy), f(batch.pathological)
    terms = {
        "adv": lsgan_generator_loss(discs.module.d_p(fake_p))
        + lsgan_generator_loss(discs.module.d_h(fake_h)),
        "cyc": cycle_loss(f(fake_p), batch.healthy) + cycle_loss(g(fake_h), batch.pathological),
        "surround": surround_l1(fake_p, batch.healthy, batch.surround),
    }
    if weights["id"] > 0:  # two more generator passes, only when they count
        terms["id"] = (identity_loss(g(batch.pathological), batch.pathological)
                       + identity_loss(f(batch.healthy), batch.healthy))
    if weights["div"] > 0:  # G once more on the same h, with other noise
        terms["div"] = diversity_loss(fake_p, g(batch.healthy), batch.healthy)
    loss = generator_objective(terms, weights)
    gens.backward(loss)
    gens.step()
    _set_trainable(discs.module, True)
    values = {f"loss_{k}": v.item() for k, v in terms.items()}
    values["loss_g"] = loss.item()
    return values, fake_p.detach(), fake_h.detach()


def discriminator_step(discs: Any, batch: GanBatch, fake_p: torch.Tensor, fake_h: torch.Tensor,
                       pools: dict[str, ImagePool]) -> dict[str, float]:
    """One optimiser step of D_P and D_H on real images and fakes drawn from the history pools."""
    d = discs.module
    loss = (lsgan_discriminator_loss(d.d_p(batch.pathological), d.d_p(pools["p"].query(fake_p)))
            + lsgan_discriminator_loss(d.d_h(batch.healthy), d.d_h(pools["h"].query(fake_h))))
    discs.backward(loss)
    discs.step()
    return {"loss_d": loss.item()}


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(trainable)
