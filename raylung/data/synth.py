"""GAN augmentation in the data plane: a Ray Data actor that turns healthy samples pathological.

    dataset = build_dataset(cfg, "train", epochs, "healthy", labelled_only=True)
    dataset = add_synthesis(dataset, cfg)      # p_synth of the labelled healthy samples -> G(h)

Each actor loads the exported generator once and keeps it; which samples are translated is
drawn from each sample's own seed, and so are the noise fields of a G that reads some
(``gan.noise_channels``), so a batch replays exactly. A translated sample keeps its
lung mask (the surround L1 kept the outline) and is flagged ``synthetic``.
"""

from __future__ import annotations

import json

import numpy as np
import ray
import torch

from raylung.config import Config
from raylung.data.specs import chosen_for_synthesis, noise_seed
from raylung.models.generator import smooth_noise
from raylung.networks import export_config, load_generator


def add_synthesis(dataset: ray.data.Dataset, cfg: Config) -> ray.data.Dataset:
    """Append the GAN stage (an actor pool of ``seg.synth_actors``) to a sample stream."""
    seg = cfg.seg
    return dataset.map_batches(
        GanAugment,
        fn_constructor_kwargs={"generator": seg.generator, "p_synth": seg.p_synth,
                               "use_gpu": seg.synth_gpus > 0,
                               "storage_options": cfg.storage.storage_options},
        batch_size=cfg.data.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=seg.synth_actors),
        num_cpus=seg.synth_cpus,
        num_gpus=seg.synth_gpus,
    )


class GanAugment:
    """Ray Data actor: translates a share ``p_synth`` of the labelled healthy samples with G."""

    loads = 0  # generator loads in this process (one actor per process): shows it is once

    def __init__(self, generator: str, p_synth: float, use_gpu: bool,
                 storage_options: dict | None = None) -> None:
        # the driver has checked it against the run (check_generator)
        self.generator, _ = load_generator(generator, storage_options)
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.generator.to(self.device)
        self.p_synth = p_synth
        GanAugment.loads += 1

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        twins = batch.get("synthetic", np.zeros(len(batch["seed"]), bool))  # the oracle's
        chosen = np.array([
            self.p_synth > 0 and bool(labelled) and domain == "healthy" and not twin
            and chosen_for_synthesis(int(seed), self.p_synth)
            for seed, labelled, domain, twin in zip(batch["seed"], batch["labelled"],
                                                    batch["domain"], twins)], dtype=bool)
        if chosen.any():
            batch["image"] = np.array(batch["image"])  # writable copy of Ray's read-only block
            batch["image"][chosen] = self._translate(batch["image"][chosen], batch["seed"][chosen])
        batch["synthetic"] = chosen | batch["synthetic"] if "synthetic" in batch else chosen
        batch["generator_loads"] = np.full(len(chosen), GanAugment.loads, np.int32)
        return batch

    @torch.no_grad()
    def _translate(self, images: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """G of the images; a G with noise inputs reads fields drawn from each sample's seed."""
        x = torch.from_numpy(images)
        noise = None
        if self.generator.noise_channels:
            noise = torch.cat([
                smooth_noise(x[i:i + 1], self.generator.noise_channels,
                             torch.Generator().manual_seed(noise_seed(int(seed))))
                for i, seed in enumerate(seeds)]).to(self.device)
        return self.generator(x.to(self.device), noise).float().cpu().numpy()


def check_generator(config: Config) -> None:
    """``seg.generator`` must have learned on samples like this run's (mode, context, HU window,
    crop size, grid spacing) and, from the same store, on the same split: otherwise scans it
    learned the disease from could be this run's validation or test cases."""
    path = config.seg.generator
    trained = export_config(path, "generator_h2p", config.storage.storage_options)
    size = "data.slice_size" if config.data.mode == "slice2d" else "data.patch_size"
    keys = ["data.mode", "data.context_slices", "data.hu_norm", size, "ingest.spacing_mm"]
    if str(trained.data.store).rstrip("/") == str(config.data.store).rstrip("/"):
        keys += ["data.splits_file"] if config.data.splits_file else [
            "data.splits_file", "data.seed", "data.split_fractions"]
    for key in keys:
        section, field = key.split(".")
        was, now = (getattr(getattr(c, section), field) for c in (trained, config))
        if was != now:
            raise ValueError(f"{path}: generator trained with {key}={json.dumps(was)}, this "
                             f"job uses {json.dumps(now)}")
