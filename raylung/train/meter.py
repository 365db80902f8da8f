"""Per-interval training meter: mean loss terms, steps/s and the share of time spent on data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


class Meter:
    """Averages the loss terms of the steps since the last ``flush`` and times the data wait.

    >>> meter = Meter()
    >>> meter.wait(iter([1]))
    1
    >>> meter.add({"loss": 1.0}); meter.add({"loss": 3.0})
    >>> meter.flush()["loss"]
    2.0
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._start = time.perf_counter()
        self._wait = 0.0
        self._sums: dict[str, float] = {}
        self._count = 0

    def wait(self, batches: Iterator[T]) -> T | None:
        """The next batch (None at the end), with the time spent waiting for it counted."""
        start = time.perf_counter()
        batch = next(batches, None)
        self._wait += time.perf_counter() - start
        return batch

    def add(self, terms: dict[str, float]) -> None:
        """Count one step's loss terms."""
        for key, value in terms.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1

    def flush(self) -> dict[str, float]:
        """Means since the last flush, ``steps_per_s`` and ``data_wait_fraction``; then reset."""
        elapsed = time.perf_counter() - self._start
        out = {k: v / max(self._count, 1) for k, v in self._sums.items()}
        out.update(steps_per_s=self._count / elapsed, data_wait_fraction=self._wait / elapsed)
        self._reset()
        return out
