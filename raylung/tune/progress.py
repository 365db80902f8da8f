"""A sweep's console: one line at a trial's start, one per validation and one at its end, in
place of Tune's own status tables (as wide as the searched fields and metrics, every 30 s).

    tune  validation 4/9  trial e0cec_00002 at 1/3: objective 818.3  best 804.1 (e0cec_00001)
          1.54/min  at most 3m15s left
    tune  trial e0cec_00003 stopped early at validation 1/3 (4 of 4 trials ended)

The total counts every unfinished trial's full run, so the time left is an upper bound while a
scheduler may stop trials early; it shrinks as they stop.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ray import tune

from raylung.errors import last_line
from raylung.train.progress import duration
from raylung.tune.callback import VALIDATION

ENDED = ("TERMINATED", "ERROR")


class SweepProgress(tune.Callback):
    """Prints the sweep's progress on the driver; ``max_reports`` validations make a full
    trial, ``mode`` ("min"/"max") ranks the objective."""

    def __init__(self, max_reports: int, mode: str) -> None:
        self.max_reports = max_reports
        self.mode = mode
        self.setup()

    def setup(self, total_num_samples: int | None = None, **info: Any) -> None:
        """At the sweep's start (a resumed one's, too): count the rate from now."""
        self.samples = total_num_samples or 0
        self.started = time.monotonic()
        self.seen = 0

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Its values, and a sign of life before its first validation (a downstream trial
        trains its GAN first, which reports nothing)."""
        values = "  ".join(f"{key}={_value(value)}" for key, value in trial.config.items())
        print(f"tune  trial {trial.trial_id} started: {values}", flush=True)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any,
                        result: dict[str, Any], **info: Any) -> None:
        if "objective" not in result:
            return
        self.seen += 1
        print(f"tune  {self.line(trials, trial, result, time.monotonic() - self.started)}",
              flush=True)

    def line(self, trials: list[Any], trial: Any, result: dict[str, Any], elapsed: float) -> str:
        """The validation's line: the sweep's count, the trial's score, the best, the rate
        (Tune calls before it stores ``result`` as the trial's last).

        >>> from types import SimpleNamespace as T
        >>> progress = SweepProgress(max_reports=5, mode="min")
        >>> progress.samples, progress.seen = 4, 3
        >>> a = T(trial_id="a_00000", status="TERMINATED", last_result={"objective": 0.5,
        ...       "validation": 2})
        >>> b = T(trial_id="a_00001", status="RUNNING", last_result={"objective": 0.7,
        ...       "validation": 1})
        >>> line = progress.line([a, b], b, {"objective": 0.4, "validation": 2}, elapsed=180.0)
        >>> line.split("  ")  # doctest: +NORMALIZE_WHITESPACE
        ['validation 4/17', 'trial a_00001 at 2/5: objective 0.4', 'best 0.4 (a_00001)',
         '1.00/min', 'at most 13m00s left']
        """
        latest = {t.trial_id: t.last_result or {} for t in trials} | {trial.trial_id: result}
        done = sum(_validations(r) for r in latest.values())
        total = done + sum(self.max_reports - _validations(latest[t.trial_id]) for t in trials
                           if t.status not in ENDED)
        total += self.max_reports * max(0, self.samples - len(trials))
        best = self._best(latest)
        rate = self.seen / elapsed * 60 if elapsed > 0 else 0.0
        left = (total - done) / rate * 60 if rate > 0 else float("inf")
        return (f"validation {done}/{total}  trial {trial.trial_id} at "
                f"{result.get(VALIDATION, '?')}/{self.max_reports}: objective "
                f"{result['objective']:.4g}{best}  {rate:.2f}/min  "
                f"at most {duration(left)} left")

    def _best(self, latest: dict[str, dict[str, Any]]) -> str:
        """The best objective so far and its trial (the first of a tie: the demo's short
        sweep ties at 0)."""
        scored = [(result["objective"], trial) for trial, result in latest.items()
                  if not math.isnan(result.get("objective", math.nan))]
        if not scored:
            return ""
        value, trial = (min if self.mode == "min" else max)(scored, key=lambda pair: pair[0])
        return f"  best {value:.4g} ({trial})"

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any,
                          **info: Any) -> None:
        reached = _validations(trial.last_result or {})
        how = ("finished" if reached >= self.max_reports
               else f"stopped early at validation {reached}/{self.max_reports}")
        print(f"tune  trial {trial.trial_id} {how}{self._ended(trials, trial)}", flush=True)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any,
                         **info: Any) -> None:
        print(f"tune  trial {trial.trial_id} failed ({_error(trial)}); restarting it "
              f"(failure {trial.num_failures}), from its latest checkpoint if it has one",
              flush=True)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        print(f"tune  trial {trial.trial_id} failed: {_error(trial)}"
              f"{self._ended(trials, trial)}; its traceback: {Path(trial.path) / 'error.txt'}",
              flush=True)

    def _ended(self, trials: list[Any], trial: Any) -> str:
        """The count of ended trials, ``trial`` among them (Tune calls before it marks it)."""
        ended = sum(t.status in ENDED for t in trials if t is not trial) + 1
        return f" ({ended} of {max(self.samples, len(trials))} trials ended)"


def _value(value: Any) -> str:
    """A searched value as a person reads it.

    >>> _value(0.120766), _value(4), _value("x")
    ('0.1208', '4', 'x')
    """
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _validations(result: dict[str, Any]) -> int:
    return int(result.get(VALIDATION, 0))


def _error(trial: Any, most: int = 200) -> str:
    """The last line of the trial's error file (where its cause is named), at most ``most``
    characters (Ray's message for a dead process runs to 800)."""
    path = trial.error_file
    if not path or not Path(path).is_file():
        return "no error file"
    line = last_line(RuntimeError(Path(path).read_text()))
    return line if len(line) <= most else line[:most] + "..."
