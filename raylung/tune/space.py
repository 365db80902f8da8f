"""The sweep file: a base job config plus a ``space:`` of config fields to search.

    space:                                   # dotted config field -> one distribution
      gan.lambda_surround: {loguniform: [1, 100]}
      gan.lambda_adv: {loguniform: [0.1, 10]}
      gan.lr: {choice: [0.0001, 0.0002]}
      gan.seed: {grid: [0, 1]}               # every value, num_samples times each
    tune: {objective: composite, num_samples: 16, max_concurrent_trials: 2}
    gan: {steps: 200}                        # any other section: the base the trials override

Every problem is one line, ``FILE: space.FIELD: problem``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ray import tune

from raylung.config import (Config, ConfigError, dump_config, flat_items, is_site_key,
                            load_config, read_yaml_tree, yaml_text)

CONTINUOUS = ("loguniform", "uniform")
DISTRIBUTIONS = (*CONTINUOUS, "choice", "grid")
# The sweep's own settings: where it runs and how it searches, not what a trial trains.
FIXED_SECTIONS = ("tune", "run", "ray", "storage", "logging")
SWEEP_FILE = "sweep.yaml"


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the base config of every trial and the space it searches."""

    config: Config
    space: dict[str, dict[str, list[Any]]]

    @property
    def folder(self) -> Path:
        """Tune's experiment folder: ``run.storage_path/run.name``."""
        return Path(self.config.run.storage_path) / self.config.run.name

    def to_yaml(self) -> str:
        """The resolved sweep as a file ``load_sweep`` reads back."""
        return dump_config(self.config) + yaml_text({"space": self.space},
                                                    default_flow_style=None)


def load_sweep(path: str | Path, base: str | Path | Sequence[str | Path] | None = None,
               overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Read a sweep file; its sections override the ``base`` config file(s), ``overrides`` win.
    A base file that sets nothing but ``raylung.config.SITE_KEYS`` (a ``cluster/`` file's
    scaling and storage) wins over the sweep file, so the same sweep runs on a laptop and on a
    cluster; an experiment file, or a run's resolved config, is a base like any other."""
    path = Path(path)
    tree = read_yaml_tree(path)
    space = tree.pop("space", None)
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: space: missing; map config fields to distributions, "
                          "e.g. gan.lambda_adv: {loguniform: [0.1, 10]}")
    bases = [] if base is None else [base] if isinstance(base, (str, Path)) else list(base)
    site = []  # a cluster/ file's layer again, over the sweep file's
    for file in bases:
        layer = read_yaml_tree(file)
        items = list(flat_items(layer))
        if items and all(is_site_key(key) for key, _ in items):
            site.append((str(file), layer))
    try:
        config = load_config(base, overrides, layers=[(str(path), tree), *site])
    except ConfigError as err:
        files = " + ".join(map(str, bases))
        where = f"{path} over {files}" if files else str(path)
        problem = str(err)
        raise ConfigError(f"{where}: {problem[problem.find('invalid config:'):]}"
                          if "invalid config:" in problem else problem) from None
    return Sweep(config, {key: _checked(config, key, spec, path) for key, spec in space.items()})


def read_sweep(folder: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """The sweep saved in a sweep folder (for ``--resume``), wherever the folder now is."""
    folder = Path(folder).resolve()
    if not (folder / SWEEP_FILE).exists():
        raise ConfigError(f"{folder}: not a raylung sweep folder (no {SWEEP_FILE})")
    where = [f"run.storage_path={json.dumps(str(folder.parent))}",
             f"run.name={json.dumps(folder.name)}"]
    return load_sweep(folder / SWEEP_FILE, None, [*overrides, *where])


def param_space(sweep: Sweep) -> dict[str, Any]:
    """The Ray Tune search space: one flat key per searched config field."""
    makers = {"loguniform": lambda a: tune.loguniform(*a), "uniform": lambda a: tune.uniform(*a),
              "choice": tune.choice, "grid": tune.grid_search}
    return {key: makers[name](args) for key, spec in sweep.space.items()
            for name, args in spec.items()}


def trial_config(config: Config, params: dict[str, Any]) -> Config:
    """The base config with a trial's values of the searched fields."""
    tree = config.model_dump(mode="json")
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node[part]
        node[leaf] = value
    return Config.model_validate(tree)


def base_values(sweep: Sweep) -> dict[str, Any]:
    """The base config's values of the searched fields (the defaults a sweep improves on)."""
    tree = sweep.config.model_dump(mode="json")
    return {key: _get(tree, key) for key in sweep.space}


def _checked(config: Config, key: str, spec: Any, path: Path) -> dict[str, list[Any]]:
    """One space entry, or a ConfigError naming the file and the field."""
    try:
        annotation = _field(key)
        name, args = _distribution(spec)
        _check_args(name, args, annotation)
        for value in (args if name in ("choice", "grid") else args[:2]):
            _check_value(config, key, value)
    except ValueError as err:
        raise ConfigError(f"{path}: space.{key}: {err}") from None
    return {name: list(args)}


def _field(key: str) -> Any:
    """The type of a searchable config field; ValueError for anything else."""
    parts = key.split(".")
    if parts[0] in FIXED_SECTIONS:
        raise ValueError(f"not searchable: {', '.join(FIXED_SECTIONS)} are the sweep's own "
                         "settings")
    annotation: Any = Config
    for depth, part in enumerate(parts):
        if not _is_section(annotation):
            raise ValueError(f"{'.'.join(parts[:depth])} is a field, not a section")
        fields = annotation.model_fields
        if part not in fields:
            owner = ".".join(parts[:depth]) or "the config"
            raise ValueError(f"unknown config field ({owner} has: {', '.join(fields)})")
        annotation = fields[part].annotation
    if _is_section(annotation):
        raise ValueError("is a section; search one of its fields")
    return annotation


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _distribution(spec: Any) -> tuple[str, list[Any]]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"expected one distribution as {{name: [values]}}, one of "
                         f"{', '.join(DISTRIBUTIONS)}")
    (name, args), = spec.items()
    if name not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {name!r} (use {', '.join(DISTRIBUTIONS)})")
    if not isinstance(args, list) or not args:
        raise ValueError(f"{name} needs a list, e.g. {name}: [1, 10]")
    return name, args


def _check_args(name: str, args: list[Any], annotation: Any) -> None:
    if name not in CONTINUOUS:
        return
    if annotation is not float:
        raise ValueError(f"{name} needs a float field; use choice or grid for this one")
    if any(isinstance(a, str) for a in args):
        raise ValueError(f"{name} needs numbers, got {args} (YAML reads 5e-5 as text: "
                         "write 5.0e-5)")
    if len(args) != 2 or not all(isinstance(a, (int, float)) for a in args):
        raise ValueError(f"{name} needs [low, high], got {args}")
    low, high = args
    if not low < high:
        raise ValueError(f"{name} needs low < high, got [{low}, {high}]")
    if name == "loguniform" and low <= 0:
        raise ValueError(f"loguniform needs 0 < low, got [{low}, {high}]")


def _check_value(config: Config, key: str, value: Any) -> None:
    try:
        trial_config(config, {key: value})
    except ValidationError as err:
        problem = err.errors()[0]["msg"]
        raise ValueError(f"{json.dumps(value)} is not valid here: {problem}") from None


def _get(tree: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        tree = tree[part]
    return tree
