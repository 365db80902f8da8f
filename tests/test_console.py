"""The driver's console filter: Ray's known false alarms dropped, everything else kept."""

from __future__ import annotations

import os
import subprocess
import sys

WRITER = r"""
import os, sys
from raylung.console import quiet_driver
quiet_driver(verbose=VERBOSE)
sys.stderr.write("raylung: a real warning\n"); sys.stderr.flush()
os.write(2, b"[E core_worker.cc:2465] Actor 'MapWorker' has constructor arguments in the "
            b"object store and max_restarts > 0. If the arguments ...\n")
os.write(2, b"\ringest: 1/2")
os.write(2, b"\ringest: 2/2\n")
os.write(2, b"last words without a newline")
print("demo_gan  step 20/120  loss_g 7.464", flush=True)
os.write(1, b"(raylet) WARNING: 8 PYTHON worker processes have been started on node: 8c06 ...\n")
print("train-gan: step 120 -> generator G.pt")
"""


def _run(verbose: bool) -> subprocess.CompletedProcess:
    code = WRITER.replace("VERBOSE", str(verbose))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)


def test_known_ray_noise_is_dropped_and_the_rest_kept_in_order():
    out = _run(verbose=False)
    assert out.stderr == (b"raylung: a real warning\n\ringest: 1/2\ringest: 2/2\n"
                          b"last words without a newline")
    assert out.stdout == (b"demo_gan  step 20/120  loss_g 7.464\n"
                          b"train-gan: step 120 -> generator G.pt\n")


def test_verbose_shows_everything():
    out = _run(verbose=True)
    assert b"constructor arguments in the object store" in out.stderr
    assert b"PYTHON worker processes" in out.stdout


def test_what_ray_prints_while_it_shuts_down_at_exit_is_filtered_too():
    """Ray's exit handler, registered when Ray is imported, runs after the filter's own: its
    worker-pool warning reached the console at the end of every sweep."""
    code = r"""
import ray
import ray._private.worker as worker
from raylung.console import quiet_driver
quiet_driver(verbose=False)
ray.init(num_cpus=1, include_dashboard=False)
disconnect = worker.disconnect
def noisy_disconnect(*args, **kwargs):  # what Ray's exit prints from its error listener
    if worker.global_worker.connected:
        print("(raylet) WARNING: 18 PYTHON worker processes have been started on node: 8c06",
              flush=True)
    disconnect(*args, **kwargs)
worker.disconnect = noisy_disconnect
print("tune: 6 trials (6 finished)", flush=True)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # its own cluster
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == b"tune: 6 trials (6 finished)\n"
