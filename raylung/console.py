"""What a person sees on the console: raylung's own lines, and Ray's only with ``ray.verbose``.

Ray's INFO lines (execution plans, worker-group starts, every ``ray.train.report``) stay in
the session's log files under ``/tmp/ray/session_latest/logs``; warnings and errors still show.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import sys
import threading

import ray
import ray.train

# Lines Ray prints on the console in a healthy run, each also kept in Ray's own log files.
RAY_NOISE = re.compile(
    r"has constructor arguments in the object store and max_restarts > 0"  # ray#53727: every
    # actor pool (Ray Data, Ray Train) makes this C++ "E" line, no failure
    r"|Token authentication is enabled for this Ray cluster"  # the local cluster's default
)


def ray_logging(verbose: bool) -> ray.LoggingConfig:
    """The job's logging config for every Ray process: INFO only when ``verbose``.

    A job logging config also drops the ``(RayTrainWorker pid=...)`` prefix from the lines
    that workers print, so rank 0's progress line reads as the job's own."""
    return ray.LoggingConfig(encoding="TEXT", log_level="INFO" if verbose else "WARNING")


def train_logging(verbose: bool) -> ray.train.LoggingConfig:
    """Ray Train's own log level (worker-group starts, every report), as ``ray_logging``."""
    return ray.train.LoggingConfig(log_level="INFO" if verbose else "WARNING")


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not RAY_NOISE.search(record.getMessage())


def quiet_driver(verbose: bool) -> None:
    """In this process (the driver): Ray's and Ray Data's INFO lines off, and the known
    noise (``RAY_NOISE``) filtered from the console unless ``verbose``."""
    if verbose:
        return
    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        logger.addFilter(_Quiet())
    _filter_stderr()


@functools.cache  # once per process
def _filter_stderr() -> None:
    """Pass this process's stderr (file descriptor 2, where Ray's C++ core writes) through a
    thread that drops ``RAY_NOISE`` lines; restored at exit with nothing lost."""
    console = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not RAY_NOISE.search(line.decode(errors="replace")):
                    os.write(console, line)

    thread = threading.Thread(target=forward, name="raylung-stderr", daemon=True)
    thread.start()

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(console, 2)  # the pipe's last writer closes: the thread drains it and ends
        thread.join(timeout=5)

    atexit.register(restore)
