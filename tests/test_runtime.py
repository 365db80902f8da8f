"""raylung's Ray settings: how often Ray Train's controller takes the workers' reports."""

from __future__ import annotations

import os

from raylung.runtime import POLL_ENV, REPORT_POLL_S, poll_reports_often


def test_runs_poll_reports_often_unless_the_user_set_the_interval(monkeypatch):
    env: dict[str, str] = {}  # this process's own environment stays as it was
    monkeypatch.setattr(os, "environ", env)
    poll_reports_often()
    assert float(env[POLL_ENV]) == REPORT_POLL_S < 2.0  # Ray's default: 2 s
    env[POLL_ENV] = "5"
    poll_reports_often()
    assert env[POLL_ENV] == "5"
