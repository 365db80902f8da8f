"""Rank 0's console line at every report: step / total, the main metrics, rate, time left.

Workers put their lines into a Ray queue that the driver prints, so the line shows once on
the driver's console (a laptop, ``ray job submit``'s log) while workers' own output stays in
Ray's session logs.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from ray.util.queue import Empty, Queue

GAN_KEYS = ("loss_g", "loss_d", "loss_surround", "val_translation", "val_surround_l1_hu",
            "val_wall_dice")
SEG_KEYS = ("loss", "synthetic_fraction", "val_dice", "val_rim_dice")


def progress_line(run: str, total: int, keys: Sequence[str], metrics: dict[str, float]) -> str:
    """One line for a person: the run, its step of ``total``, those ``keys`` that ``metrics``
    holds, and the time left at ``steps_per_s``.

    >>> progress_line("demo", 120, ("loss_g", "val_dice"),
    ...               {"step": 40, "loss_g": 2.31249, "steps_per_s": 0.5})
    'demo  step 40/120  loss_g 2.312  0.50 steps/s  2m40s left'
    """
    step, rate = int(metrics["step"]), metrics.get("steps_per_s", 0.0)
    shown = "".join(f"  {key} {metrics[key]:.4g}" for key in keys if key in metrics)
    left = (total - step) / rate if rate > 0 else math.inf
    return f"{run}  step {step}/{total}{shown}  {rate:.2f} steps/s  {duration(left)} left"


def scores_text(metrics: dict[str, float | None]) -> str:
    """A run's validation scores as the progress lines show them (a score without a value,
    NaN, or None as a resumed run's NaN comes, is left out: e.g. the opacity overlap of a G that
    drew none yet).

    >>> scores_text({"step": 80, "val_dice": 0.74631, "val_hd95": 25.4999, "val_nsd": None,
    ...              "val_opacity_overlap": float("nan")})
    'val_dice 0.7463  val_hd95 25.5'
    """
    return "  ".join(f"{key} {value:.4g}" for key, value in metrics.items()
                     if key.startswith("val_") and value is not None and not math.isnan(value))


def duration(seconds: float) -> str:
    """``1h02m``, ``2m40s`` or ``9s``; ``?`` before the rate is known.

    >>> duration(3725), duration(160), duration(9.4), duration(math.inf)
    ('1h02m', '2m40s', '9s', '?')
    """
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_reporter(queue: Queue | None, run: str, total: int,
                      keys: Sequence[str]) -> Callable[[dict[str, float]], None] | None:
    """Rank 0's announcer: puts ``progress_line`` of each report into the driver's queue
    (None: no console progress, e.g. inside a Tune trial)."""
    if queue is None:
        return None
    rate = RunRate()
    return lambda metrics: queue.put(progress_line(run, total, keys, rate(metrics)))


class RunRate:
    """Steps/s since the run's first report, validations and checkpoints included, so that
    the time left holds (an interval's own rate swings with the validation it held).

    >>> rate = RunRate()
    >>> rate({"step": 10, "steps_per_s": 5.0}, now=100.0)["steps_per_s"]  # the first: its own
    5.0
    >>> rate({"step": 30, "steps_per_s": 40.0}, now=110.0)["steps_per_s"]
    2.0
    """

    def __init__(self) -> None:
        self._first: tuple[int, float] | None = None

    def __call__(self, metrics: dict[str, float], now: float | None = None) -> dict[str, float]:
        now = time.monotonic() if now is None else now
        step = int(metrics["step"])
        if self._first is None or step <= self._first[0]:
            self._first = (step, now)
            return metrics
        return {**metrics, "steps_per_s": (step - self._first[0]) / (now - self._first[1])}


@contextlib.contextmanager
def printed_progress(show: bool) -> Iterator[Queue | None]:
    """Driver side: a Ray queue whose lines a thread prints as they come, so each line shows
    exactly once, whatever Ray does with the workers' own output (None when not ``show``)."""
    if not show:
        yield None
        return
    queue = Queue(actor_options={"num_cpus": 0})
    done = threading.Event()

    def pump() -> None:
        while not done.is_set():
            with contextlib.suppress(Empty):
                print(queue.get(timeout=0.5), flush=True)

    thread = threading.Thread(target=pump, name="raylung-progress", daemon=True)
    thread.start()
    try:
        yield queue
    finally:
        done.set()
        thread.join()
        while not queue.empty():
            print(queue.get_nowait(), flush=True)
        queue.shutdown()
