"""The raylung command: one command and config on a laptop, in a sweep, under ray job submit.

    raylung phantom data/ --cases 8                 # synthetic thorax CT (the built-in data)
    raylung ingest data/ --store store/             # CT files -> zarr store (Ray tasks)
    raylung info store/                             # what a store holds
    raylung stream store/ --mode patch3d            # the Ray Data stream alone: speed, samples
    raylung train-gan --config exp.yaml data.store=store/   # the shape-aware CycleGAN
    raylung train-seg --config exp.yaml data.store=store/ seg.generator=G.pt  # U-Net + GAN aug
    raylung tune --space tune_spaces/demo.yaml      # Ray Tune search of the loss weights
    raylung segment scans/ --model segmenter.pt --out masks/     # apply a trained segmenter
    raylung synth healthy/ --model generator_h2p.pt --out synth/  # G's disease in whole scans
    raylung evaluate --pred masks/ --ref labels/ --out report/   # Dice, HD95, surface Dice...
    raylung demo --out demo_out/                    # the end-to-end demo on phantoms

Every job but ``evaluate`` takes ``--config FILE.yaml`` and ``key=value`` overrides of the
config tree (see raylung/config.py); exp.yaml: an experiment file such as
experiments/cpu_scale.yaml, which a laptop pairs with cluster/laptop.yaml.
"""

from __future__ import annotations

import argparse
import sys

from raylung.cli.apply import add_evaluate, add_segment, add_synth
from raylung.cli.data import add_info, add_ingest, add_phantom, add_stream
from raylung.cli.demo import add_demo
from raylung.cli.jobs import RAY_LOGS
from raylung.cli.train import add_train_gan, add_train_seg, add_tune
from raylung.config import ConfigError
from raylung.errors import InputError, last_line, storage_problem
from raylung.secrets import redacted
from raylung.store.case_store import StoreError


REDONE = ("phantom", "info", "stream", "evaluate")  # jobs a rerun does again from the start


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``raylung`` console script; returns the exit status."""
    parser, jobs = _parser()
    args, extra = parser.parse_known_args(argv)
    job = jobs[args.command]  # its own usage on an error, not raylung's
    if "overrides" in args:
        args.overrides = [*args.overrides, *extra]
        bad = [item for item in args.overrides if "=" not in item or item.startswith("-")]
        if bad:
            job.error(f"unrecognized arguments: {' '.join(bad)} (overrides are key=value)")
    elif extra:  # a job that reads no config
        job.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args)
    except (ConfigError, InputError, StoreError, ValueError) as err:
        print(redacted(f"raylung {args.command}: error: {err}"), file=sys.stderr)
        return 2
    except OSError as err:  # what the file system refuses: a folder given as a file, no permission
        where = f"{err.filename}: " if err.filename else ""
        print(redacted(f"raylung {args.command}: error: {where}{err.strerror or err}"),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # a job's own says how to go on
        resumes = " to resume" if args.command not in REDONE else ""
        print(f"raylung {args.command}: interrupted; "
              f"{str(stop) or f'rerun the same command{resumes}'}", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - only storage's and Ray Train's failures are lines
        problem = storage_problem(err)
        if problem:
            print(f"raylung {args.command}: error: {problem}", file=sys.stderr)
            return 2
        line = _run_failure(err)
        if line is None:
            raise
        print(f"raylung {args.command}: run failed: {line}\n  logs: the run folder's "
              f"metrics.csv and Ray's session logs ({RAY_LOGS}); rerun the same command to "
              "resume from the latest checkpoint", file=sys.stderr)
        return 1


def _run_failure(err: Exception) -> str | None:
    """The worker's (or controller's) error of a failed Ray Train run in one line; None for
    any other exception."""
    from ray.train import ControllerError, TrainingFailedError, WorkerGroupError

    if not isinstance(err, TrainingFailedError):
        return None
    cause: BaseException = err
    if isinstance(err, WorkerGroupError) and err.worker_failures:
        cause = err.worker_failures[min(err.worker_failures)]
    elif isinstance(err, ControllerError):
        cause = err.controller_failure
    return last_line(cause)


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``raylung`` parser and each job's own, by name."""
    summary, examples, _ = __doc__.split("\n\n", 2)
    parser = argparse.ArgumentParser(prog="raylung", description=summary,
                                     epilog="examples:\n" + examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_phantom(sub)
    add_ingest(sub)
    add_info(sub)
    add_stream(sub)
    add_train_gan(sub)
    add_train_seg(sub)
    add_tune(sub)
    add_segment(sub)
    add_synth(sub)
    add_evaluate(sub)
    add_demo(sub)
    return parser, sub.choices
