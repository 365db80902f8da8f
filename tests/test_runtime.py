"""raylung's Ray settings: how often Ray Train's controller takes the workers' reports; free
ports for the nodes and servers that tests and sweeps start."""

from __future__ import annotations

import os
import socket

from raylung.runtime import POLL_ENV, REPORT_POLL_S, free_ports, poll_reports_often


def test_runs_poll_reports_often_unless_the_user_set_the_interval(monkeypatch):
    env: dict[str, str] = {}  # this process's own environment stays as it was
    monkeypatch.setattr(os, "environ", env)
    poll_reports_often()
    assert float(env[POLL_ENV]) == REPORT_POLL_S < 2.0  # Ray's default: 2 s
    env[POLL_ENV] = "5"
    poll_reports_often()
    assert env[POLL_ENV] == "5"


def test_free_ports_are_different_and_free():
    """200 ports drawn one at a time repeat one more often than not (the birthday bound over
    Linux's ~28000 ephemeral ports); drawn together they cannot."""
    ports = free_ports(200)
    assert len(set(ports)) == 200
    for port in ports[:5]:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
