"""``raylung ingest``: every case becomes a committed zarr group, in parallel Ray tasks.

The split of every case is fixed in the store's ``splits.json`` (raylung/data/splits.py).
A rerun skips cases whose commit record carries the same source paths and either the same
sizes and times of those files (without reading them) or the same hash of their bytes; it
rewrites changed or interrupted ones, and reports every failing case in one line (stderr and
ingest_report.csv). Settings that shape the stored arrays (``PREPARATION``) cannot change in a
store that holds cases: its runs take them from its ``raylung_config.yaml``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import ray
from tqdm import tqdm

from raylung.config import PREPARATION, Config, ConfigError, IngestConfig, absolute, dump_config
from raylung.data.splits import store_splits
from raylung.errors import InputError, first_line, last_line
from raylung.ingest.case import prepare_case, source_hash, source_stat
from raylung.ingest.sources import CaseSource, Failure, read_sources
from raylung.runtime import connect
from raylung.secrets import redacted
from raylung.store.case_store import CONFIG, CaseStore
from raylung.store.manifest import write_manifest

REPORT = "ingest_report.csv"


@dataclass
class IngestResult:
    """What one ingest run did."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every case was written or found unchanged."""
        return not self.failures


def ingest(src: str, store_url: str, config: Config, progress: bool = True) -> IngestResult:
    """Ingest every case of ``src`` into the store at ``store_url``."""
    sources, failures = read_sources(src, config.ingest.domain)
    # the tasks run in folders of their own (on a cluster, the raylet's)
    store = CaseStore(absolute(store_url), config.storage.storage_options)
    _check_preparation(store, config.ingest)
    store.create()
    store.write_bytes(CONFIG, dump_config(config).encode())
    result = IngestResult(failures=list(failures))
    for failure in failures:
        _print_failure(failure)
    try:
        if sources:
            connect(config.ray)
            _run_tasks(sources, store, config, result, progress)
    except KeyboardInterrupt:  # the cases committed so far are listed and split all the same
        _finish(store, result, config)
        raise
    _finish(store, result, config)
    return result


def _finish(store: CaseStore, result: IngestResult, config: Config) -> None:
    """The report of the failures, the manifest of the committed cases, and their splits."""
    store.write_table(REPORT, pd.DataFrame([redacted(vars(f)) for f in result.failures],
                                           columns=["case", "file", "reason"]))
    manifest = write_manifest(store)
    if not manifest.empty:
        store_splits(store, manifest, config.data)  # from now on every case keeps its split


def _check_preparation(store: CaseStore, cfg: IngestConfig) -> None:
    """Refuse settings that would prepare new cases unlike the store's others: every run on the
    store prepares scans as its config file says (raylung.data.pipeline.with_store_ingest)."""
    saved = store.ingest_settings()
    if saved is None:
        return
    mine = cfg.model_dump(mode="json")
    changed = [key for key in PREPARATION if key in saved and saved[key] != mine[key]]
    if changed and store.case_ids():
        key = changed[0]
        raise ConfigError(f"ingest.{key}={json.dumps(mine[key])}: the store {store.url} holds "
                          f"cases ingested with {json.dumps(saved[key])}; ingest into a new "
                          "store")


def _run_tasks(sources: list[CaseSource], store: CaseStore, config: Config,
               result: IngestResult, progress: bool) -> None:
    """Keep at most ``ray.max_parallel_cases`` tasks in flight; collect outcomes as they end."""
    pending = list(reversed(sources))
    running: dict[ray.ObjectRef, CaseSource] = {}
    with tqdm(total=len(sources), desc="ingest", unit="case", disable=not progress,
              file=sys.stderr) as bar:  # closed before an interrupt's line, too
        while pending or running:
            while pending and len(running) < config.ray.max_parallel_cases:
                source = pending.pop()
                running[_ingest_case.remote(source, store.url, store.storage_options,
                                            config.ingest)] = source
            (done,), _ = ray.wait(list(running), num_returns=1)
            source = running.pop(done)
            try:
                outcome = ray.get(done)
            except ray.exceptions.RayError as err:  # its process died (out of memory, killed)
                outcome = {"case": source.case_id, "file": source.image, "status": "failed",
                           "reason": f"its worker died: {last_line(err)}"}
            _collect(outcome, result, bar)


def _collect(outcome: dict[str, Any], result: IngestResult, bar: tqdm) -> None:
    bar.update(1)
    if outcome["status"] == "failed":
        failure = Failure(outcome["case"], outcome["file"], outcome["reason"])
        result.failures.append(failure)
        _print_failure(failure)
    else:
        getattr(result, outcome["status"]).append(outcome["case"])


def _print_failure(failure: Failure) -> None:
    """One line on stderr, written around any progress bar, URL passwords redacted."""
    tqdm.write(redacted(f"raylung ingest: case {failure.case}: {failure.file}: {failure.reason}"),
               file=sys.stderr)


@ray.remote(num_cpus=1, max_retries=0)
def _ingest_case(source: CaseSource, url: str, options: dict, cfg: IngestConfig) -> dict[str, Any]:
    """Ingest one case; every problem comes back as a failure outcome, never as an exception.
    A case whose sources changed and now fail leaves the store: training on its earlier
    version would contradict the report."""
    store = CaseStore(url, options)
    outcome = {"case": source.case_id, "file": source.image, "reason": ""}
    committed: dict[str, Any] = {}
    try:
        committed = store.committed(source.case_id) or {}
        stat = source_stat(source, cfg)
        if committed.get("source_stat") == stat:
            return {**outcome, "status": "skipped"}
        digest = source_hash(source, cfg)
        if committed.get("source_hash") == digest:  # same bytes, new times (a copy, a touch)
            store.recommit(source.case_id, {**committed, "source_stat": stat})  # hashed once
            return {**outcome, "status": "skipped"}
        case = prepare_case(source, cfg)
        store.write_case(source.case_id, case.arrays, case.attrs,
                         {"source_hash": digest, "source_stat": stat}, cfg.chunks,
                         cfg.compression_level, cfg.shards)
    except InputError as err:
        outcome = {**outcome, "status": "failed", "file": err.path, "reason": err.problem}
    except Exception as err:  # one bad case must not stop the others; report it in one line
        outcome = {**outcome, "status": "failed", "reason": first_line(err)}
    else:
        return {**outcome, "status": "written"}
    if committed:
        store.remove_case(source.case_id)
        outcome["reason"] += " (its earlier version was removed from the store)"
    return outcome
