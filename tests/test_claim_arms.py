"""benchmarks/claim.py's arm schedule, without training: rows in the arms' order whatever
finishes first, and an arm that exits stops the claim."""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def claim(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as `python benchmarks/claim.py` has it
    return importlib.import_module("claim")


def test_two_arms_at_once_rows_in_order(claim):
    second_started = threading.Event()

    def first() -> dict:  # finishes after the second has started: both ran at once
        assert second_started.wait(timeout=60)
        return {"arm": "first"}

    def second() -> dict:
        second_started.set()
        return {"arm": "second"}
    assert claim._at_once(2, [first, second]) == [{"arm": "first"}, {"arm": "second"}]


def test_an_arm_that_exits_starts_no_further_arm(claim):
    started = []

    def arm(name: str, fails: bool = False):
        def run() -> dict:
            started.append(name)
            if fails:
                sys.exit(f"claim: arm {name} failed")
            return {"arm": name}
        return run
    with pytest.raises(SystemExit, match="arm b failed"):
        claim._at_once(1, [arm("a"), arm("b", fails=True), arm("c"), arm("d")])
    assert started == ["a", "b"]
