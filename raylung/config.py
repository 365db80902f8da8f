"""One typed config tree for every raylung job.

A job reads ``--config FILE.yaml`` (optional) and then ``key=value`` overrides with dotted keys
(``ingest.spacing_mm=[1,1,2]``); files and values are parsed by PyYAML's safe loader, so lists and
numbers work (``1e3`` too, a string to plain YAML 1.1). The resolved tree is validated by pydantic
and written next to every output.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError,
                      field_validator, model_validator)

from raylung.secrets import redacted, restored

DOMAINS = ("healthy", "pathological")
P_SYNTH_WITH_GENERATOR = 0.5  # seg.p_synth when seg.generator is given alone


class ConfigError(ValueError):
    """A config file or override that does not fit the config tree."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# What may differ between a laptop, a sweep and a cluster (the cluster/ files): scaling and
# storage, nothing else.
SITE_KEYS = frozenset({
    "ray.address", "ray.num_cpus", "scaling.num_workers", "scaling.use_gpu",
    "scaling.cpus_per_worker", "scaling.gpus_per_worker", "deepspeed.zero_stage",
    "deepspeed.bf16", "data.read_concurrency", "data.reader_cpus", "seg.synth_actors",
    "seg.synth_cpus", "seg.synth_gpus", "ingest.chunks", "ingest.shards", "run.storage_path",
    "run.max_failures", "run.keep_checkpoints", "storage.storage_options"})


def is_site_key(key: str) -> bool:
    """Whether a dotted key (or one inside it, e.g. an option of ``storage_options``) is one
    of ``SITE_KEYS``."""
    return any(key == site or key.startswith(f"{site}.") for site in SITE_KEYS)


def absolute(value: str) -> str:
    """A local path made absolute (``~`` expanded); a URL as it is."""
    return value if "://" in value else str(Path(value).expanduser().resolve())


# A local path (`~` expanded) is made absolute against the current folder when the config is
# loaded, a URL kept as it is: Ray Train's workers and Tune's trials run in folders of their own.
PathOrUrl = Annotated[str, AfterValidator(absolute)]


class PhantomConfig(_Section):
    """Synthetic thorax CT, the embedded default data set."""

    cases: int = Field(8, ge=1, description="number of cases to make")
    pathological_fraction: float = Field(0.5, ge=0.0, le=1.0)
    seed: int = 0
    size: int = Field(256, ge=64, le=1024, description="in-plane voxels (square)")
    slices: tuple[int, int] = Field((80, 120), description="min/max slice count")
    twins: bool = Field(False, description="healthy cases also get their diseased twin "
                        "(twin.nii.gz): the oracle synthesis of benchmarks/claim.py")

    @field_validator("slices")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 8 <= v[0] <= v[1]:
            raise ValueError("slices must be [min, max] with 8 <= min <= max")
        return v


# The ingest settings that shape what a model sees (grid, HU, thorax box, lung labels). A run
# takes them from its store, so its validation, test report and exported model prepare whole
# scans as the store's cases were prepared.
PREPARATION = ("spacing_mm", "hu_window", "lung_labels", "body_hu", "bone_hu", "min_bone_voxels")


class IngestConfig(_Section):
    """How source CT becomes canonical arrays in the store."""

    # (x, y, z) in mm as SimpleITK orders it; null keeps each case's own spacing.
    # 1x1x2 mm keeps a 350 mm thorax near 350 px in-plane and halves slice count of thin-slice CT.
    spacing_mm: tuple[float, float, float] | None = (1.0, 1.0, 2.0)
    # Stored HU are clipped to this window (int16 holds it; below -1024 is only reconstruction
    # noise).
    hu_window: tuple[int, int] = (-1024, 3071)
    # Labels of a multi-label mask that make the lung; empty means every non-zero label.
    lung_labels: list[int] = Field(default_factory=list)
    # Inner chunks (z, y, x) of every stored volume, inside shards (one file each; null: no
    # shards). Measured (benchmarks/ingest.py, data_throughput.py): 2x32x32 decompresses < 2x
    # the bytes of a 64^3 patch (8x128x128: ~6x), reads patches faster and slices as fast per
    # voxel as patches; 8x16x16 suits a patch-only store best.
    chunks: tuple[int, int, int] = (2, 32, 32)
    shards: tuple[int, int, int] | None = (64, 128, 128)
    compression_level: int = Field(3, ge=1, le=22, description="zstd level")
    # Thorax crop: body is the largest component above body_hu, bone is above bone_hu inside it.
    body_hu: int = -500
    bone_hu: int = 200
    min_bone_voxels: int = Field(20, ge=1, description="smaller bone specks are removed as noise")
    domain: Literal["healthy", "pathological"] | None = Field(
        None, description="domain of every case when SRC is a folder without cases.csv"
    )

    @field_validator("hu_window")
    @classmethod
    def _window(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not -32768 <= v[0] < v[1] <= 32767:
            raise ValueError("hu_window must be [low, high] within int16 with low < high")
        return v

    @field_validator("spacing_mm")
    @classmethod
    def _spacing(cls, v: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if v is not None and min(v) <= 0:
            raise ValueError("spacing_mm must be positive")
        return v

    @field_validator("chunks")
    @classmethod
    def _chunks(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(v) < 1:
            raise ValueError("chunks must be positive")
        return v

    @model_validator(mode="after")
    def _shards(self) -> IngestConfig:
        if self.shards is not None and any(h < 1 or h % c
                                           for h, c in zip(self.shards, self.chunks)):
            raise ValueError(f"shards {list(self.shards)} must be positive multiples of chunks "
                             f"{list(self.chunks)}")
        return self


class AugmentConfig(_Section):
    """Classical augmentation; every parameter is drawn from the sample's seed (replayable)."""

    enabled: bool = True
    flip_prob: float = Field(0.5, ge=0.0, le=1.0, description="per axis in flip_axes")
    # Left-right only by default: an anterior-posterior or head-foot flip makes anatomy no
    # scanner produces, which a GAN would learn as part of the domain.
    flip_axes: tuple[Literal["z", "y", "x"], ...] = ("x",)
    rotate_deg: float = Field(10.0, ge=0.0, le=45.0, description="max |angle| per rotation axis")
    scale: tuple[float, float] = (0.9, 1.1)
    hu_shift: float = Field(30.0, ge=0.0, description="max |shift| in HU")
    hu_scale: tuple[float, float] = (0.95, 1.05)
    noise_hu: float = Field(10.0, ge=0.0, description="max noise sd in HU")

    @field_validator("scale", "hu_scale")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError("must be [low, high] with 0 < low <= high")
        return v


class DataConfig(_Section):
    """The Ray Data stream of training samples (raylung/data)."""

    store: PathOrUrl | None = Field(None, description="store path or URL the trainers read")
    mode: Literal["slice2d", "patch3d"] = "slice2d"
    slice_size: tuple[int, int] = (256, 256)
    context_slices: int = Field(0, ge=0, le=8,
                                description="neighbours each side as channels (2.5-D)")
    patch_size: tuple[int, int, int] = (64, 64, 64)
    lung_centre_fraction: float = Field(0.67, ge=0.0, le=1.0,
                                        description="patch centres drawn on the lung, rest random")
    # A whole scan holds slices without lung above and below it: a U-Net that never saw one
    # finds lung there. The GAN learns disease, which lives in the lung: its slices stay there.
    box_slices: float = Field(0.1, ge=0.0, le=1.0, description="share of the segmenter's "
                              "2-D slices drawn anywhere in the thorax box, not through the lung")
    # Width of the band outside the lung for the surrounding-L1 loss; 0 skips it (the
    # segmenter does not need it, and its distance transform is the costliest step of a crop).
    surround_mm: float = Field(5.0, ge=0.0, description="width of the band outside the lung")
    # Normalised image = clip(HU, lo, hi) mapped linearly to [-1, 1]; bone saturates at hi.
    hu_norm: tuple[int, int] = (-1024, 1024)
    samples_per_epoch: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    # Splits are kept in the store (splits.json, one per fractions and seed): a case never
    # changes split when cases are added. splits_file: your own case_id,split CSV instead.
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    splits_file: PathOrUrl | None = Field(None, description="CSV case_id,split replacing the "
                                          "store's")
    seed: int = 0
    # Samples per reader call, i.e. per Ray Data block; trainers still take batch_size. Each
    # block costs Ray a task and an object, so 32 streams 64^3 patches 1.2x and slices 1.3x
    # faster than blocks of 8 (benchmarks/data_throughput.py).
    read_block: int = Field(32, ge=1, description="samples per reader call (Ray Data block)")
    read_concurrency: int = Field(2, ge=1, description="crop-reading actors per stream "
                                  "and training worker")
    reader_cpus: float = Field(1.0, gt=0.0, description="CPUs reserved per crop-reading actor")
    # The oracle of GAN augmentation: a perfect G. Only phantom stores have twins.
    twin_p: float = Field(0.0, ge=0.0, le=1.0, description="share of labelled healthy samples "
                          "read from their case's diseased twin, with its lung mask")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    @field_validator("hu_norm")
    @classmethod
    def _norm(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not v[0] < v[1]:
            raise ValueError("hu_norm must be [low, high] with low < high")
        return v

    @field_validator("split_fractions")
    @classmethod
    def _fractions(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) < 0 or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError("split_fractions must be three non-negative numbers summing to 1")
        return v


class GanConfig(_Section):
    """The shape-aware CycleGAN (README, "The shape-aware CycleGAN"): networks, loss weights,
    schedule."""

    width: int = Field(32, ge=1, description="generator base channels")
    n_blocks: int = Field(6, ge=1, description="generator residual blocks")
    # G(x) = clamp(x + change, -1, 1), starting at the identity: it draws the disease and leaves
    # the rest as it was, where a plain G blurs the whole slice (benchmarks/MEASUREMENTS.md).
    residual: bool = Field(True, description="G(x) = x + change (false: the plain ResNet G)")
    noise_channels: int = Field(0, ge=0, description="random smooth fields G reads beside the "
                                "image, so it can draw other disease into the same scan")
    disc_width: int = Field(64, ge=1)
    disc_layers: int = Field(3, ge=1)
    lambda_adv: float = Field(1.0, ge=0.0)
    lambda_cyc: float = Field(10.0, ge=0.0, description="Zhu et al. 2017")
    lambda_id: float = Field(5.0, ge=0.0, description="0.5 x lambda_cyc, Zhu et al. 2017")
    # A little above the cycle term's: the smallest weight of a screen (benchmarks/MEASUREMENTS.md)
    # whose G kept the band's change at half or less of a G without it in every seed.
    lambda_surround: float = Field(12.0, ge=0.0)
    # Mode seeking (Mao et al. 2019): needs noise channels; else G tends to ignore its noise.
    lambda_diversity: float = Field(0.0, ge=0.0, description="weight of the share of G's "
                                    "change that must depend on its noise")
    lr: float = Field(2e-4, gt=0.0)
    betas: tuple[float, float] = (0.5, 0.999)
    steps: int = Field(200, ge=1, description="optimiser steps of each engine")
    decay_start: int = Field(100, ge=0, description="constant lr until here, then linear to 0")
    pool_size: int = Field(50, ge=0, description="history of fakes shown to the discriminators")
    ema_decay: float = Field(0.995, ge=0.0, lt=1.0, description="EMA of G's weights, the G that "
                             "is validated and exported (0: the trained G itself)")
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(50, ge=1)
    seed: int = Field(0, description="network initialisation")
    val_samples: int = Field(8, ge=0, description="healthy val samples scored at each "
                             "checkpoint (0: no validation)")
    val_pathological: int = Field(32, ge=1, description="real pathological val samples that "
                                  "translation and realism compare G(h) with")

    @model_validator(mode="after")
    def _consistent(self) -> GanConfig:
        if self.decay_start > self.steps:
            raise ValueError(f"decay_start {self.decay_start} must be <= steps {self.steps}")
        if self.lambda_diversity > 0 and not self.noise_channels:
            raise ValueError("lambda_diversity > 0 needs noise_channels > 0")
        return self


class SegConfig(_Section):
    """The U-Net segmenter and its on-the-fly GAN augmentation (README, "Segmentation with GAN
    augmentation")."""

    channels: tuple[int, ...] = Field((16, 32, 64, 128), description="U-Net features per level")
    strides: tuple[int, ...] = Field((2, 2, 2), description="one per level transition")
    num_res_units: int = Field(2, ge=0)
    lr: float = Field(1e-3, gt=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    steps: int = Field(200, ge=1, description="optimiser steps")
    decay_start: int = Field(100, ge=0, description="constant lr until here, then linear to 0")
    log_every: int = Field(10, ge=1)
    # Masks of diseased lungs are scarce: by default the segmenter learns from labelled healthy
    # cases only (and what G makes of them); "all" also uses labelled pathological cases.
    train_on: Literal["healthy", "all"] = "healthy"
    p_synth: float = Field(0.0, ge=0.0, le=1.0,
                           description="share of labelled healthy samples translated by G "
                           f"(unset: {P_SYNTH_WITH_GENERATOR} with seg.generator, else 0)")
    generator: PathOrUrl | None = Field(None, description="exported generator_h2p.pt of train-gan")
    synth_actors: int = Field(1, ge=1, description="GAN actors per training worker")
    synth_cpus: float = Field(1.0, gt=0.0, description="CPUs per GAN actor")
    synth_gpus: float = Field(0.0, ge=0.0, description="GPU fraction per GAN actor (clusters)")
    # Semi-supervision: an EMA teacher labels unlabelled pathological samples where it is sure.
    pseudo_label: bool = False
    pseudo_threshold: float = Field(0.9, gt=0.5, le=1.0)
    pseudo_weight: float = Field(0.5, ge=0.0)
    ema_decay: float = Field(0.99, ge=0.0, lt=1.0)
    val_cases: int = Field(4, ge=0, description="pathological val scans segmented whole and "
                           "scored at each checkpoint (0: no validation)")
    rim_mm: float = Field(3.0, gt=0.0, description="half-width of the band of rim Dice")
    sw_batch_size: int = Field(4, ge=1, description="slices or patches per forward pass "
                               "when whole scans are segmented (validation)")
    seed: int = Field(0, description="network initialisation")

    @model_validator(mode="before")
    @classmethod
    def _share_of_a_generator(cls, data: Any) -> Any:
        """A generator given without a share translates half the samples: at 0 it would be
        loaded and checked, and then translate nothing."""
        if isinstance(data, dict) and data.get("generator") and data.get("p_synth") is None:
            return {**data, "p_synth": P_SYNTH_WITH_GENERATOR}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SegConfig:
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError("strides needs one entry fewer than channels")
        if self.decay_start > self.steps:
            raise ValueError(f"decay_start {self.decay_start} must be <= steps {self.steps}")
        if self.p_synth > 0 and not self.generator:
            raise ValueError("p_synth > 0 needs seg.generator (an exported generator_h2p.pt)")
        return self


class DeepSpeedConfig(_Section):
    """What raylung turns into a DeepSpeed config (see raylung/train/deepspeed_config.py)."""

    zero_stage: int = 1
    bf16: bool = Field(True, description="bf16 on GPU; CPU always trains in fp32")
    grad_clip: float = Field(1.0, ge=0.0)
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimiser step (gan.steps "
                            "and seg.steps count micro-batches)")

    @field_validator("zero_stage")
    @classmethod
    def _stage(cls, v: int) -> int:
        if v == 3:
            raise ValueError("ZeRO stage 3 is not supported: the GAN calls its generators and "
                             "discriminators outside the engine's forward, which stage 3 needs "
                             "to gather parameters; use 0, 1 or 2")
        if v not in (0, 1, 2):
            raise ValueError("ZeRO stage must be 0, 1 or 2")
        return v


class ScalingSection(_Section):
    """How many Ray Train workers and what each gets; the only thing a cluster run changes."""

    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0.0)
    gpus_per_worker: float = Field(1.0, gt=0.0, le=1.0, description="GPU share of a worker "
                                   "with use_gpu; below 1 leaves its GPU room for seg.synth_gpus")

    @model_validator(mode="after")
    def _own_gpus(self) -> ScalingSection:
        # Ray may pack two workers of half a GPU or less onto one GPU, which NCCL and
        # DeepSpeed (one device per local rank) refuse at the engine's start.
        if self.use_gpu and self.num_workers > 1 and self.gpus_per_worker <= 0.5:
            raise ValueError(f"gpus_per_worker {self.gpus_per_worker} with {self.num_workers} "
                             "workers: two workers could share one GPU, which NCCL refuses; "
                             "give each more than 0.5")
        return self


class RunSection(_Section):
    """Where a training run keeps checkpoints and results; rerunning the same name resumes."""

    name: str = "raylung"
    storage_path: PathOrUrl = Field("runs", validate_default=True,
                                    description="local folder or URL (s3://...) for Ray Train")
    # A lost worker or node restarts the worker group from the latest checkpoint.
    max_failures: int = Field(3, ge=-1, description="restarts from the latest checkpoint "
                              "before a run (or a Tune trial) fails; -1: no limit, 0: none")
    keep_checkpoints: int | None = Field(None, ge=1, description="checkpoints kept: the latest "
                                         "this many (and a copy of the best in best/); null: all")


class LoggingConfig(_Section):
    """Where training metrics go besides the console line (raylung/train/metrics_log.py)."""

    tensorboard: bool = Field(True, description="event files in <storage_path>/<name>/tensorboard")
    mlflow_tracking_uri: str | None = Field(None, description="MLflow server or store; "
                                            "null: no MLflow (needs pip install mlflow-skinny)")
    mlflow_experiment: str = "raylung"


class TuneConfig(_Section):
    """``raylung tune``: what a sweep optimises and how it searches (raylung/tune/).

    The search space is the ``space:`` mapping of the sweep file; each trial's resources are
    its driver's ``driver_cpus`` plus the ``scaling`` section (workers, CPUs, GPUs)."""

    # translation by default: shape alone is best for G = identity, realism alone ignores the
    # chest wall; translation rewards disease drawn in the lung and is discounted when the
    # wall moves, which is the trade-off the search is for (README).
    objective: Literal["shape", "realism", "composite", "translation", "downstream"] = \
        "translation"
    mode: Literal["min", "max"] | None = Field(None, description="null: the objective's own")
    shape_weight: float = Field(1.0, ge=0.0, description="composite: weight of surround L1")
    realism_weight: float = Field(1.0, ge=0.0, description="composite: weight of realism")
    downstream_p_synth: float = Field(0.5, gt=0.0, le=1.0, description="downstream: share of "
                                      "the short segmentation run's samples G translates")
    search: Literal["random", "optuna"] = "random"
    scheduler: Literal["asha", "median", "none"] = "asha"
    num_samples: int = Field(8, ge=1, description="trials (times each grid combination)")
    max_concurrent_trials: int = Field(2, ge=1)
    grace_period: int = Field(1, ge=1, description="validations before a trial may be stopped")
    reduction_factor: float = Field(2.0, gt=1.0, description="ASHA keeps 1/rf at each rung")
    # A fraction of a CPU: a whole one per trial driver would starve the training workers.
    driver_cpus: float = Field(0.1, gt=0.0, description="CPUs of each trial's driver")
    evaluate_defaults: bool = Field(True, description="the first trial runs the base config's "
                                    "values of the searched fields (the baseline)")
    seed: int = Field(0, description="seed of the search algorithm")


class StorageConfig(_Section):
    """Where stores live; options go to fsspec (e.g. S3 endpoint and keys)."""

    storage_options: dict[str, Any] = Field(default_factory=dict)


class RayConfig(_Section):
    """How raylung reaches Ray: no address starts a local cluster (laptop), ``auto`` joins one."""

    address: str | None = None
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local cluster (None: all)")
    max_parallel_cases: int = Field(2, ge=1, description="ingest tasks in flight at once")
    verbose: bool = Field(False, description="Ray's own INFO lines on the console too "
                          "(they are always in the session's log files)")


class Config(_Section):
    """The root of the tree; every job reads the sections it needs."""

    phantom: PhantomConfig = Field(default_factory=PhantomConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    gan: GanConfig = Field(default_factory=GanConfig)
    seg: SegConfig = Field(default_factory=SegConfig)
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig)
    scaling: ScalingSection = Field(default_factory=ScalingSection)
    run: RunSection = Field(default_factory=RunSection)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ray: RayConfig = Field(default_factory=RayConfig)

    @model_validator(mode="before")
    @classmethod
    def _unredact(cls, tree: Any) -> Any:
        """A written config's redacted secrets are left to the environment."""
        return restored(tree) if isinstance(tree, dict) else tree

    @model_validator(mode="after")
    def _labels(self) -> Config:
        if any(label <= 0 for label in self.ingest.lung_labels):
            raise ValueError("ingest.lung_labels must be positive label values")
        return self


def load_config(paths: str | Path | Sequence[str | Path] | None = None,
                overrides: list[str] | tuple[str, ...] = (),
                layers: Sequence[tuple[str, dict[str, Any]]] = ()) -> Config:
    """Build the config from YAML files, then ``layers`` (trees read elsewhere, e.g. a sweep
    file's sections, by origin; keys may be dotted), then ``key=value`` overrides; later ones
    win key by key, so an experiment file and a ``cluster/`` scaling file combine."""
    files = [] if paths is None else [paths] if isinstance(paths, (str, Path)) else list(paths)
    stack = [*((str(path), _read_yaml(Path(path))) for path in files),
             *((origin, _undotted(layer)) for origin, layer in layers)]
    tree: dict[str, Any] = {}
    origins: dict[str, str] = {}  # dotted key -> the file, or the command line, that set it last
    for origin, update in stack:
        _merge(tree, update)
        origins.update(dict.fromkeys(_dotted_keys(update), origin))
    for item in overrides:
        _apply_override(tree, item)
        origins.update(dict.fromkeys(_dotted_keys(item.partition("=")[0]), "command line"))
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        order = [origin for origin, _ in stack] + ["command line"]
        raise ConfigError(_one_line(err, origins, order)) from None


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomic: temp file then rename)."""
    from raylung.io.write import write_atomic  # here: it brings SimpleITK, slow for --help

    write_atomic(path, lambda tmp: tmp.write_text(dump_config(config)))


def dump_config(config: Config) -> str:
    """The resolved config as YAML text, secrets redacted (raylung/secrets.py)."""
    return yaml_text(public_tree(config))


def public_tree(config: Config) -> dict[str, Any]:
    """The resolved config as plain data with every secret redacted: what raylung writes."""
    return redacted(config.model_dump(mode="json"))


def read_yaml_tree(path: str | Path) -> dict[str, Any]:
    """A YAML file's mapping before validation (e.g. a sweep file's sections), one-line errors."""
    return _read_yaml(Path(path))


def flat_items(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """A nested config tree as ``(section.key, value)`` pairs; an empty section is a value."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from flat_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader that refuses a key given twice in one mapping (plain YAML
    keeps the last one silently) and reads ``1e3`` and ``2e-4`` as numbers, as YAML 1.2 does
    (YAML 1.1 wants ``1.0e+3``, and ``gan.steps: 1e3`` failed as "unable to parse string")."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: its keys may repeat
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # the base class says so in one line
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


class _ConfigDumper(yaml.SafeDumper):
    """``yaml.safe_dump``'s dumper that quotes text such as ``1e3``, which ``_ConfigLoader``
    would read back as a number."""


for _yaml in (_ConfigLoader, _ConfigDumper):
    _yaml.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
        list("-+.0123456789"))


def yaml_text(tree: dict[str, Any], **options: Any) -> str:
    """A tree as the YAML that raylung's config reader reads back unchanged (``options``:
    ``yaml.dump``'s)."""
    return yaml.dump(tree, Dumper=_ConfigDumper, sort_keys=False, **options)


def _read_yaml(path: Path) -> dict[str, Any]:
    """A config file's tree; a section left empty (``phantom:``) is an empty mapping."""
    try:
        tree = yaml.load(path.read_text(), Loader=_ConfigLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as err:  # a folder, no permission
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML ({problem}{where})") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return {key: {} if value is None else value for key, value in tree.items()}


def _merge(tree: dict[str, Any], update: dict[str, Any]) -> None:
    """Deep-merge ``update`` into ``tree``: mappings merge, anything else replaces."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            _merge(tree[key], value)
        else:
            tree[key] = value


def _undotted(tree: dict[str, Any]) -> dict[str, Any]:
    """A tree whose dotted keys (``gan.steps: 100``) are nested sections."""
    nested: dict[str, Any] = {}
    for key, value in flat_items(tree):
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _apply_override(tree: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected key=value, e.g. ingest.spacing_mm=[1,1,2]")
    try:
        value = yaml.load(raw, Loader=_ConfigLoader)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, (int, float, date)) and _is_text(key):
        value = raw  # run.name=2024, =1e3 or =2024-06-01: the text typed, which YAML reads else
    node = tree
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    node[leaf] = value


def _annotation(parts: Sequence[str | int]) -> Any:
    """The type of the config field (or section) at ``parts``; None where there is none."""
    node: Any = Config
    for part in parts:
        field = getattr(node, "model_fields", {}).get(part)
        if field is None:
            return None
        node = field.annotation
    return node


def _is_text(key: str) -> bool:
    """Whether a dotted key names a text field of the config (``str`` or ``str | None``)."""
    node = _annotation(key.split("."))
    kinds = (node, *get_args(node))  # str, or the members of `str | None`
    return str in [get_args(t)[0] if get_origin(t) is Annotated else t for t in kinds]


def _dotted_keys(tree: dict[str, Any] | str, prefix: str = "") -> list[str]:
    """Every key of a tree (or of one dotted key) with the sections above it, dotted."""
    if isinstance(tree, str):
        parts = tree.split(".")
        return [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
    keys = []
    for key, value in tree.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys += _dotted_keys(value, f"{prefix}{key}.")
    return keys


def _one_line(err: ValidationError, origins: dict[str, str], order: list[str]) -> str:
    """The validation errors in one line, led by where the offending keys were set (of the
    config's layers, ``order``)."""
    parts, blamed = [], []
    for e in _short_tuples_merged(err.errors()):
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{loc}: {_message(e)}" if loc else _message(e))
        inside = [origin for key, origin in origins.items() if key.startswith(f"{loc}.")]
        keys = [".".join(loc.split(".")[:n]) for n in range(loc.count(".") + 1, 0, -1)]
        # a section's own check (decay_start <= steps) blames every layer that set its keys
        blamed += inside or [next((origins[k] for k in keys if k in origins), "")]
    where = " + ".join(dict.fromkeys(o for o in order if o in blamed))
    return f"{where + ': ' if where else ''}invalid config: " + "; ".join(parts)


def _short_tuples_merged(errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic's errors, with a short tuple's "hu_norm.1: Field required" (one per missing
    item) made one error of the tuple that counts what it has and needs."""
    merged: dict[tuple, dict[str, Any]] = {}
    out = []
    for e in errors:
        *parent, index = e["loc"] or [None]
        if e["type"] != "missing" or not isinstance(index, int):
            out.append(e)
        elif tuple(parent) in merged:
            merged[tuple(parent)]["ctx"]["needed"] = index + 1
        else:
            merged[tuple(parent)] = {"type": "too_short", "loc": tuple(parent),
                                     "ctx": {"given": index, "needed": index + 1}}
            out.append(merged[tuple(parent)])
    return out


def _message(error: dict[str, Any]) -> str:
    """pydantic's message (less its "Value error, " of raylung's own checks), an unknown
    key's with the keys its section has, a section's given a value as a section's."""
    if error["type"] in ("model_type", "dict_type"):  # the value is not shown: it may be a key
        given = {type(None): "nothing", bool: "true or false", int: "a number", float: "a number",
                 str: "text", list: "a list"}.get(type(error["input"]), "a value")
        return f"is a section: give it keys (key: value) or leave it out, not {given}"
    if error["type"] == "string_type" and isinstance(error["input"], (int, float, date)):
        return "is text, but YAML read a number or a date: put it in quotes"
    if error["type"] == "too_short" and "needed" in error["ctx"]:
        return f"needs {error['ctx']['needed']} values, got {error['ctx']['given']}"
    if error["type"] == "too_long":
        most = "needs" if error["ctx"].get("field_type") == "Tuple" else "takes at most"
        return f"{most} {error['ctx']['max_length']} values, got {error['ctx']['actual_length']}"
    if error["type"] != "extra_forbidden":
        return error["msg"].removeprefix("Value error, ")
    section = _annotation(error["loc"][:-1])
    owner = ".".join(map(str, error["loc"][:-1])) or "the config"
    return f"unknown key ({owner} has: {', '.join(section.model_fields)})"
