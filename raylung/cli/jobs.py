"""What every ``raylung`` job shares: ``--config`` files and ``key=value`` overrides, the
resolved config, and warnings as one line each."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm import tqdm

from raylung.config import Config, ConfigError, load_config

RAY_LOGS = "/tmp/ray/session_latest/logs"  # Ray's own log files of the newest local session


def number(cast: type, low: float, strict: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite ``cast`` number of at least ``low`` (above it when
    ``strict``)."""
    def parse(text: str) -> float:
        value = cast(text)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text}: must be a finite number")
        if value < low or strict and value == low:
            raise argparse.ArgumentTypeError(f"{text}: must be {'above' if strict else 'at least'}"
                                             f" {low}")
        return value
    parse.__name__ = cast.__name__  # argparse's "invalid int value: 'x'"
    return parse


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, where it has a value to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def add_job(sub: argparse._SubParsersAction, name: str,
            run: Callable[[argparse.Namespace], int], help_text: str,
            *positionals: tuple[str, dict], config: bool = True,
            example: str = "ingest.spacing_mm=[1,1,2]", more: str = "",
            reads: str = "") -> argparse.ArgumentParser:
    """A subcommand: its positionals, then (unless it reads no config) ``--config`` and
    ``key=value`` overrides (``example`` in the help; ``reads``: what of them it uses); ``more``
    adds to its own --help."""
    job = sub.add_parser(name, help=help_text, description=f"{help_text}{more}",
                         formatter_class=_ShowDefaults)
    for dest, kwargs in positionals:
        job.add_argument(dest, **kwargs)
    job.set_defaults(run=run)
    if not config:
        return job
    job.add_argument("--config", type=Path, action="append",
                     help="YAML config file (sections as in raylung/config.py); repeat to layer "
                          "files, later ones win: --config exp.yaml --config cluster/gpu.yaml"
                          + reads)
    job.add_argument("-v", "--verbose", action="store_true",
                     help="also show Ray's own INFO lines (ray.verbose=true); they are always "
                          f"in the session logs under {RAY_LOGS}")
    job.add_argument("overrides", nargs="*", metavar="key=value",
                     help=f"config overrides with dotted keys, e.g. {example}{reads}")
    return job


def job_config(args: argparse.Namespace, *extra: str) -> Config:
    """The job's config: its ``--config`` files, then ``extra``, then the command line's
    overrides (they win)."""
    from raylung.console import quiet_loggers  # here: it brings Ray, slow for --help

    verbose = ["ray.verbose=true"] if args.verbose else []
    config = load_config(args.config, [*extra, *args.overrides, *verbose])
    quiet_loggers(config.ray.verbose)  # now: Ray logs INFO before it starts (a run's resume)
    return config


def flag_overrides(args: argparse.Namespace, flags: dict[str, object]) -> list[str]:
    """``key=value`` of the config keys that flags set (None: not given); a key that is also
    given as ``key=value`` is refused, as which one wins is no one's guess."""
    given = {item.split("=", 1)[0] for item in args.overrides}
    for key, value in flags.items():
        if value is not None and key in given:
            raise ConfigError(f"{key}: set both by a flag and by {key}=...; give one")
    return [f"{key}={value}" for key, value in flags.items() if value is not None]


@contextlib.contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Python warnings (e.g. an empty mask) as ``raylung COMMAND: warning: ...`` lines."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_, **__: tqdm.write(  # clear of a progress bar
            f"raylung {command}: warning: {message}", file=sys.stderr)
        yield
