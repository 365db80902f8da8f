"""GAN step time under Ray Train + DeepSpeed (1 worker) against a plain PyTorch loop, one run.

    .venv/bin/python benchmarks/train_overhead.py                 # 2-D, 128^2, batch 4
    .venv/bin/python benchmarks/train_overhead.py --size 256 --steps 20 --threads 2
    python benchmarks/train_overhead.py --gpu --size 256 --batch 8 --steps 50 --threads 4

All loops run the same modules and the same step functions (raylung/train/cyclegan.py) on the
same random batches, without data loading, so the ratio is the framework's overhead alone
(target <= 1.10x). A middle row runs the DeepSpeed engines in this process (single-rank gloo,
no Ray), which splits the overhead into DeepSpeed's part and Ray's. On a 2-core machine Ray's
own daemons (GCS, raylet) take CPU time from a 2-thread step; ``--threads 1 2`` shows both.
``--gpu`` runs every loop on the GPU and adds DeepSpeed in bf16 (what raylung trains in there)
beside the fp32 rows, whose ratio to the plain loop stays the framework's overhead, and the
peak GPU memory PyTorch reserved in each loop (``peak_mib``: ZeRO's buckets show there).
Prints a table and writes benchmarks/results/train_overhead.csv.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import pandas as pd
import torch

from raylung.config import Config, load_config
from raylung.models.placement import where
from raylung.train.cyclegan import (Discriminators, GanBatch, Generators, discriminator_step,
                                    generator_step, loss_weights)
from raylung.train.image_pool import ImagePool

RESULTS = Path(__file__).parent / "results"


class PlainEngine:
    """The two calls of a DeepSpeed engine the GAN step uses, on a bare module + Adam."""

    def __init__(self, module: torch.nn.Module, config: Config) -> None:
        self.module = module
        self.optimizer = torch.optim.Adam(module.parameters(), lr=config.gan.lr,
                                          betas=config.gan.betas)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), 1.0)  # as DeepSpeed's config
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def time_steps(gens, discs, config: Config, steps: int, warmup: int = 2) -> float:
    """Mean seconds per GAN step (generator + discriminator) on fixed random batches."""
    torch.manual_seed(0)
    size = config.data.slice_size
    batch = GanBatch(torch.rand(config.data.batch_size, 1, *size) * 2 - 1,
                     torch.zeros(config.data.batch_size, *size),
                     torch.rand(config.data.batch_size, 1, *size) * 2 - 1)
    pools = {"p": ImagePool(config.gan.pool_size), "h": ImagePool(config.gan.pool_size)}
    weights = loss_weights(config)
    device, dtype = where(gens.module)
    batch = batch.to(dtype, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + steps):
        if i == warmup:
            _synchronize(device)
            start = time.perf_counter()
        _, fake_p, fake_h = generator_step(gens, discs, batch, weights)
        discriminator_step(discs, batch, fake_p, fake_h, pools)
    _synchronize(device)
    return (time.perf_counter() - start) / steps


def peak_mib(device: torch.device) -> float:
    """The most GPU memory PyTorch reserved since ``time_steps`` began (NaN on CPU)."""
    return torch.cuda.max_memory_reserved(device) / 2**20 if device.type == "cuda" else math.nan


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that the host clock times the steps themselves."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain(config: Config, steps: int) -> tuple[float, float]:
    """Seconds per step and peak MiB of the bare modules + Adam."""
    torch.manual_seed(config.gan.seed)
    device = torch.device("cuda" if config.scaling.use_gpu else "cpu")
    seconds = time_steps(PlainEngine(Generators(config).to(device), config),
                         PlainEngine(Discriminators(config).to(device), config), config, steps)
    return seconds, peak_mib(device)


def in_process(config: Config, steps: int) -> tuple[float, float]:
    """The DeepSpeed engines of a Ray Train worker, built in this process as rank 0 of 1:
    seconds per step and peak MiB."""
    from raylung.train.gan_loop import _engines

    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29531", "RANK": "0",
                       "WORLD_SIZE": "1", "LOCAL_RANK": "0"}.items():
        os.environ.setdefault(key, value)
    engines = _engines(config)
    seconds = time_steps(engines["generators"], engines["discriminators"], config, steps)
    return seconds, peak_mib(where(engines["generators"].module)[0])


def under_ray_train(config: Config, steps: int, threads: int) -> tuple[float, float]:
    """The same under a 1-worker Ray Train run: seconds per step and the worker's peak MiB."""
    import ray.train
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    def worker(loop_config: dict) -> None:
        from raylung.train.gan_loop import _engines

        cfg = Config.model_validate(loop_config["config"])
        engines = _engines(cfg)
        seconds = time_steps(engines["generators"], engines["discriminators"], cfg, steps)
        peak = peak_mib(where(engines["generators"].module)[0])
        with _empty_checkpoint() as checkpoint:
            ray.train.report({"seconds_per_step": seconds, "peak_mib": peak,
                              "threads": torch.get_num_threads()}, checkpoint=checkpoint)

    result = TorchTrainer(
        worker, train_loop_config={"config": config.model_dump(mode="json")},
        scaling_config=ScalingConfig(num_workers=1, use_gpu=config.scaling.use_gpu,
                                     resources_per_worker={"CPU": threads,
                                                           "GPU": int(config.scaling.use_gpu)}),
        run_config=RunConfig(name="train_overhead", storage_path="/tmp/raylung-bench-train"),
    ).fit()
    assert result.metrics["threads"] == threads, result.metrics
    return result.metrics["seconds_per_step"], result.metrics["peak_mib"]


def _empty_checkpoint():
    """Result.metrics is filled only by reports with a checkpoint (Ray Train V2)."""
    import contextlib
    import tempfile

    import ray.train

    @contextlib.contextmanager
    def make():
        with tempfile.TemporaryDirectory() as folder:
            yield ray.train.Checkpoint.from_directory(folder)

    return make()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--zero-stage", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--gpu", action="store_true", help="every loop on the GPU, + bf16 rows")
    args = parser.parse_args()
    overrides = [f"data.slice_size=[{args.size},{args.size}]", f"data.batch_size={args.batch}",
                 "gan.width=16", "gan.n_blocks=3", "gan.disc_width=32",
                 f"deepspeed.zero_stage={args.zero_stage}", f"scaling.use_gpu={args.gpu}",
                 f"ray.num_cpus={max(args.threads)}"]
    config = load_config(None, [*overrides, "deepspeed.bf16=false"])
    bf16 = load_config(None, [*overrides, "deepspeed.bf16=true"])
    from raylung.runtime import connect
    from raylung.train.deepspeed_config import select_accelerator

    select_accelerator(args.gpu)
    zero = f"DeepSpeed ZeRO-{args.zero_stage}"
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        baseline = plain(config, args.steps)
        rows += [_row("plain PyTorch (1 process)", threads, baseline, baseline[0]),
                 _row(f"{zero}, no Ray (1 process)", threads, in_process(config, args.steps),
                      baseline[0])]
        if args.gpu:
            rows.append(_row(f"{zero} bf16, no Ray (1 process)", threads,
                             in_process(bf16, args.steps), baseline[0]))
        connect(config.ray)
        rows.append(_row(f"Ray Train + {zero} (1 worker)", threads,
                         under_ray_train(config, args.steps, threads), baseline[0]))
        if args.gpu:
            rows.append(_row(f"Ray Train + {zero} bf16 (1 worker)", threads,
                             under_ray_train(bf16, args.steps, threads), baseline[0]))
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / f"train_overhead{'_gpu' if args.gpu else ''}.csv", index=False)
    device = torch.cuda.get_device_name() if args.gpu else "CPU"
    print(f"2-D GAN step on {device}, {args.size}^2, batch {args.batch}, {args.steps} steps\n"
          f"{table.to_string(index=False)}")


def _row(loop: str, threads: int, measured: tuple[float, float], baseline: float) -> dict:
    seconds, peak = measured
    return {"loop": loop, "torch_threads": threads, "seconds_per_step": round(seconds, 3),
            "ratio": round(seconds / baseline, 2), "peak_mib": round(peak, 1)}


if __name__ == "__main__":
    main()
