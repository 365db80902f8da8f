"""An ingest killed mid-run leaves only whole cases, and a rerun finishes the rest; a case whose
worker dies is that case's failure."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from raylung.config import PhantomConfig
from raylung.phantom import write_phantoms
from raylung.store.case_store import CaseStore

CLI = [sys.executable, "-m", "raylung"]


def _committed(url: str) -> list[str]:
    return CaseStore(url).case_ids()


@pytest.mark.slow
def test_killed_ingest_resumes(tmp_path):
    write_phantoms(tmp_path / "src", PhantomConfig(cases=6, size=128, slices=(24, 30), seed=5))
    url = str(tmp_path / "store")
    cmd = [*CLI, "ingest", str(tmp_path / "src"), "--store", url, "ray.max_parallel_cases=1",
           "ray.num_cpus=1"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _committed(url) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _committed(url)
    assert 1 <= len(done_before) < 6, "the kill should land mid-run"
    assert not (tmp_path / "store" / "manifest.parquet").exists()

    rerun = subprocess.run(cmd, capture_output=True, encoding="utf-8", timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    written, unchanged = map(int, re.search(r"(\d+) written, (\d+) unchanged", rerun.stdout).groups())
    assert written + unchanged == 6
    # the one task in flight at the kill may still have committed its case as Ray shut down
    assert len(done_before) <= unchanged <= len(done_before) + 1
    store = CaseStore(url)
    assert len(store.case_ids()) == 6
    for case_id in store.case_ids():
        image = store.open_case(case_id)["image"][...]
        assert image.dtype == np.int16 and image.min() >= -1024


@pytest.mark.slow
def test_an_interrupted_ingest_lists_the_cases_it_committed(tmp_path):
    """Ctrl-C: one line, and the manifest of the cases committed (there was none: `info` said
    "manifest.parquet: not found"; an older one would have left them out)."""
    write_phantoms(tmp_path / "src", PhantomConfig(cases=6, size=128, slices=(24, 30), seed=5))
    url = str(tmp_path / "store")
    proc = subprocess.Popen([*CLI, "ingest", str(tmp_path / "src"), "--store", url,
                             "ray.max_parallel_cases=1", "ray.num_cpus=1"],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, encoding="utf-8")
    deadline = time.monotonic() + 120
    while not _committed(url) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == ("raylung ingest: interrupted; rerun the same "
                                               "command to resume")
    listed = pd.read_parquet(tmp_path / "store" / "manifest.parquet")["case_id"]
    assert 1 <= len(listed) < 6 and sorted(listed) == sorted(_committed(url))


@pytest.mark.slow
def test_a_case_whose_worker_dies_is_one_failure_and_the_rest_are_stored(small_phantoms,
                                                                        tmp_path, ray_cluster):
    """A task process killed mid-case (as the OOM killer would) is that case's failure line,
    not a traceback: the other cases, the report, the manifest and the splits are written,
    and a rerun ingests the lost case."""
    from raylung.config import load_config
    from raylung.ingest.run import ingest

    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_task, args=("ray::_ingest_case", killed))
    killer.start()
    url = str(tmp_path / "store")
    first = ingest(str(small_phantoms), url, load_config(None, ["ray.max_parallel_cases=1"]),
                   progress=False)
    killer.join()
    assert killed
    (failure,) = first.failures
    assert failure.reason.startswith("its worker died: ") and "\n" not in failure.reason
    assert len(first.written) == 3
    assert (tmp_path / "store" / "manifest.parquet").exists()
    assert pd.read_csv(tmp_path / "store" / "ingest_report.csv")["case"].tolist() == [failure.case]
    rerun = ingest(str(small_phantoms), url, load_config(), progress=False)
    assert rerun.ok and rerun.written == [failure.case]


def _kill_first_task(title: str, killed: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not killed and time.monotonic() < deadline:
        pids = subprocess.run(["pgrep", "-f", f"^{title}"], capture_output=True,
                              encoding="utf-8").stdout.split()
        if pids:
            os.kill(int(pids[0]), signal.SIGKILL)
            killed.append(int(pids[0]))
        time.sleep(0.01)
