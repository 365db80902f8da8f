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
from typing import TextIO

import ray
import ray.train

# Lines Ray prints on the console in a healthy run that signal no problem of the run (the C++
# one is also in the driver's core log, python-core-driver-*.log).
RAY_NOISE = re.compile(
    r"has constructor arguments in the object store and max_restarts > 0"  # ray#53727: every
    # actor pool (Ray Data, Ray Train) makes this C++ "E" line, no failure
    r"|Token authentication is enabled for this Ray cluster"  # the local cluster's default
    # a training run starts about ten processes at once (controller, workers, readers...):
    # filtered, not silenced by raising Ray's start-up concurrency, which changes scheduling
    r"|PYTHON worker processes have been started on node"
    r"|Progress bars disabled\. To enable"  # raylung segment shows its own bar (scans/s)
)


def ray_logging(verbose: bool) -> ray.LoggingConfig:
    """The job's logging config for every Ray process: INFO only when ``verbose`` (which also
    forwards the workers' output to the driver, as Ray would)."""
    return ray.LoggingConfig(encoding="TEXT", log_level="INFO" if verbose else "WARNING")


def train_logging(verbose: bool) -> ray.train.LoggingConfig:
    """Ray Train's own log level (worker-group starts, every report), as ``ray_logging``."""
    return ray.train.LoggingConfig(log_level="INFO" if verbose else "WARNING")


def quiet_loggers(verbose: bool) -> None:
    """In this process: the INFO lines of Ray's Python loggers off unless ``verbose`` (Ray
    logs some before it starts, e.g. Ray Train on reading a run folder to resume)."""
    if not verbose:
        for name in ("ray", "ray.data", "ray.train", "ray.tune"):
            logging.getLogger(name).setLevel(logging.WARNING)


def quiet_driver(verbose: bool) -> None:
    """In this process (the driver): Ray's and Ray Data's INFO lines off, and the known
    noise (``RAY_NOISE``) filtered from the console unless ``verbose``."""
    quiet_loggers(verbose)
    if verbose:
        return
    for stream in (sys.stdout, sys.stderr):
        _filter(stream)


@functools.cache  # once per stream and process
def _filter(stream: TextIO) -> None:
    """Pass a standard stream at the file-descriptor level (where Ray's C++ core and its
    error listener write, too) through a thread that drops ``RAY_NOISE`` lines; restored at
    exit with nothing lost."""
    fd = stream.fileno()
    console = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)

    def forward() -> None:
        # Segments end at a newline or a carriage return, so progress bars (\r) stay live.
        pending = b""
        while chunk := os.read(read_end, 65536):
            *segments, pending = re.split(rb"(?<=[\r\n])", pending + chunk)
            for segment in segments:
                if not RAY_NOISE.search(segment.decode(errors="replace")):
                    os.write(console, segment)
        os.write(console, pending)
        os.close(read_end)

    thread = threading.Thread(target=forward, name=f"raylung-filter-{fd}", daemon=True)
    thread.start()

    def restore() -> None:
        # Ray's own exit handler, registered when Ray was imported, would run after this one
        # (last in, first out) and print the messages it waits for on the bare console: it
        # runs here instead, while the filter stands (and then finds nothing to do).
        if ray.is_initialized():
            ray.shutdown(_exiting_interpreter=True)
        stream.flush()
        os.dup2(console, fd)  # the pipe's last writer closes: the thread drains it and ends
        thread.join(timeout=5)

    atexit.register(restore)
