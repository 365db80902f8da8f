"""DeepSpeed engines in one process (gloo, world size 1): the derived config, the frozen
discriminators of the generator step, ZeRO-3 refused in one line, the accumulation schedule,
a bf16 engine (as on GPU) beside its fp32 average."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist

from raylung.cli import main
from raylung.config import load_config
from raylung.losses.segmentation import supervised_loss
from raylung.networks import build_segmenter
from raylung.runtime import free_port
from raylung.train.cyclegan import (Discriminators, GanBatch, Generators, generator_step,
                                    loss_weights)
from raylung.train.deepspeed_config import deepspeed_config
from raylung.train.ema import ema_model
from raylung.train.engine import build_engine, init_distributed
from raylung.train.seg_loop import _step


@pytest.fixture(scope="module")
def process_group():
    """A one-process gloo group, as a Ray Train worker of a 1-worker run has."""
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    init_distributed(load_config())
    yield
    dist.destroy_process_group()
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def _config(*extra):
    return load_config(None, ["gan.width=4", "gan.n_blocks=1", "gan.disc_width=4",
                              "gan.disc_layers=2", "data.batch_size=2", *extra])


def test_derived_config_follows_raylung_config():
    ds = deepspeed_config(_config("deepspeed.zero_stage=2", "deepspeed.grad_accum=4",
                                  "deepspeed.grad_clip=0.5"), 1e-3, (0.5, 0.999), 1234)
    assert ds["train_micro_batch_size_per_gpu"] == 2
    assert ds["gradient_accumulation_steps"] == 4
    assert ds["gradient_clipping"] == 0.5
    assert ds["zero_optimization"] == {"stage": 2, "reduce_bucket_size": 1234}
    assert ds["bf16"] == {"enabled": False}          # CPU: fp32 whatever deepspeed.bf16 says
    assert ds["optimizer"]["params"]["lr"] == 1e-3
    on_gpu = deepspeed_config(_config("scaling.use_gpu=true"), 1e-3, (0.5, 0.999), 10**9)
    assert on_gpu["zero_optimization"]["reduce_bucket_size"] == 500_000_000  # DeepSpeed's own
    assert on_gpu["bf16"] == {"enabled": True}


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_the_optimiser_is_adam_without_weight_decay(process_group, stage):
    """As CycleGAN prescribes; DeepSpeed's "Adam" alone is AdamW with weight decay 0.01."""
    config = _config(f"deepspeed.zero_stage={stage}")
    engine = build_engine(Discriminators(config), config, 2e-4, (0.5, 0.999), 10, 5)
    optimiser = engine.basic_optimizer
    assert type(optimiser) is torch.optim.Adam
    assert {g["weight_decay"] for g in optimiser.param_groups} == {0.0}
    assert {g["betas"] for g in optimiser.param_groups} == {(0.5, 0.999)}


@pytest.mark.parametrize("stage", [1, 2])
def test_the_gradient_bucket_holds_the_engine_not_deepspeeds_default(process_group, stage):
    """DeepSpeed's default bucket of 5e8 elements is 1 GB (bf16) to 2 GB (fp32) per engine,
    allocated at every step, for a discriminator of a few thousand weights."""
    config = _config(f"deepspeed.zero_stage={stage}")
    discs = Discriminators(config)
    engine = build_engine(discs, config, 2e-4, (0.5, 0.999), 10, 5)
    assert engine.optimizer.reduce_bucket_size == sum(p.numel() for p in discs.parameters())


def test_a_generator_with_noise_is_pushed_to_vary_with_it(process_group):
    config = _config("gan.noise_channels=1", "gan.lambda_diversity=1")
    torch.manual_seed(0)
    gens = build_engine(Generators(config), config, 2e-4, (0.5, 0.999), 10, 5)
    discs = build_engine(Discriminators(config), config, 2e-4, (0.5, 0.999), 10, 5)
    assert (gens.module.g.noise_channels, gens.module.f.noise_channels) == (1, 0)
    batch = GanBatch(torch.rand(2, 1, 32, 32) * 2 - 1, torch.ones(2, 32, 32),
                     torch.rand(2, 1, 32, 32) * 2 - 1)
    values = [generator_step(gens, discs, batch, loss_weights(config))[0] for _ in range(2)]
    assert values[0]["loss_div"] == 0  # a residual G starts as the identity, whatever its noise
    assert -1 <= values[1]["loss_div"] < 0, "after one step, G's change depends on its noise"


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_generator_step_leaves_discriminator_gradients_untouched(process_group, stage):
    config = _config(f"deepspeed.zero_stage={stage}")
    torch.manual_seed(0)
    gens = build_engine(Generators(config), config, 2e-4, (0.5, 0.999), 10, 5)
    discs = build_engine(Discriminators(config), config, 2e-4, (0.5, 0.999), 10, 5)
    before = [p.detach().clone() for p in discs.module.parameters()]
    batch = GanBatch(torch.rand(2, 1, 32, 32) * 2 - 1, torch.ones(2, 32, 32),
                     torch.rand(2, 1, 32, 32) * 2 - 1)
    generator_step(gens, discs, batch, loss_weights(config))
    for p, old in zip(discs.module.parameters(), before):
        assert p.grad is None or not p.grad.any(), "generator loss leaked into D's gradients"
        assert torch.equal(p, old)
        assert p.requires_grad, "D must be trainable again after the generator step"


def test_lr_schedule_counts_optimiser_steps_under_accumulation(process_group):
    config = _config("deepspeed.grad_accum=2")
    module = torch.nn.Linear(2, 2)
    engine = build_engine(module, config, 1.0, (0.9, 0.999), steps=8, decay_start=4)
    lrs = []
    for _ in range(8):
        loss = engine(torch.ones(2, 2)).sum()
        engine.backward(loss)
        engine.step()
        lrs.append(engine.get_lr()[0])
    assert lrs[-1] == 0.0 and lrs[3] == 1.0      # 4 optimiser steps: 2 constant, 2 decaying


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_a_bf16_student_steps_with_its_fp32_teacher(process_group, stage):
    """A GPU run's U-Net trains in bf16, at every ZeRO stage, while its pseudo-label teacher,
    the student's average, stays fp32 (the CPU runs the bf16 engine too)."""
    config = _config("scaling.use_gpu=true", f"deepspeed.zero_stage={stage}",
                     "seg.channels=[4,8]", "seg.strides=[2]", "seg.num_res_units=1",
                     "seg.pseudo_label=true", "seg.pseudo_threshold=0.51")
    torch.manual_seed(0)
    engine = build_engine(build_segmenter(config), config, 1e-3, (0.9, 0.999), 10, 5)
    teacher = ema_model(engine.module, config.seg.ema_decay)
    image = torch.rand(2, 1, 16, 16)
    labelled = {"image": image, "lung": (image[:, 0] > 0.5).long()}
    terms = _step(engine, teacher, (labelled, {"image": torch.rand(2, 1, 16, 16)}),
                  supervised_loss(), torch.bfloat16, config)
    assert next(engine.module.parameters()).dtype == torch.bfloat16
    assert next(teacher.parameters()).dtype == torch.float32
    assert terms["pseudo_confident"] > 0 and torch.isfinite(torch.tensor(terms["loss"]))


def test_the_teacher_averages_optimiser_steps_not_micro_batches(process_group):
    """With 2 micro-batches per step the same weights were averaged twice."""
    config = _config("deepspeed.grad_accum=2", "seg.channels=[4,8]", "seg.strides=[2]",
                     "seg.num_res_units=1", "seg.pseudo_label=true")
    engine = build_engine(build_segmenter(config), config, 1e-3, (0.9, 0.999), 10, 5)
    teacher = ema_model(engine.module, config.seg.ema_decay)
    image = torch.rand(2, 1, 16, 16)
    pair = ({"image": image, "lung": (image[:, 0] > 0.5).long()},
            {"image": torch.rand(2, 1, 16, 16)})
    counts = []
    for _ in range(4):
        _step(engine, teacher, pair, supervised_loss(), torch.float32, config)
        counts.append(int(teacher.n_averaged))
    assert counts == [0, 1, 1, 2]


def test_zero3_is_refused_in_one_line(capsys):
    assert main(["train-gan", "deepspeed.zero_stage=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "ZeRO stage 3 is not supported" in err


def test_cpu_process_group_builds_no_shared_memory_op(process_group):
    """Training reduces with gloo, so DeepSpeed's inference all-reduce (a C++ JIT build of
    35 s and more per install) is neither built nor loaded."""
    import deepspeed.comm.comm as ds_comm

    assert ds_comm.cdb.shm_comm_op is None
