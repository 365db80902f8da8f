"""``raylung segment``: one scan in this process, many scans as one Ray Data job.

The batch job has three stages: reader tasks (read with SimpleITK, canonical grid, thorax box),
an actor pool that loads the model once per actor and predicts (``--actors``, a GPU fraction
each on clusters), and writer tasks (back to the scan's grid, post-processing, atomic write).
A scan that fails becomes one line ``raylung segment: FILE: problem``; the others still finish.
``raylung synth`` runs its batches through the same stages (:func:`run_batch`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import ray
from tqdm import tqdm

from raylung.config import Config
from raylung.errors import InputError, first_line
from raylung.io.read import read_volume
from raylung.io.write import write_image
from raylung.networks import export_config
from raylung.secrets import redacted
from raylung.segment.inputs import Job
from raylung.segment.scan import prepare_scan
from raylung.segment.segmenter import Segmenter, finish

STAGE_CPUS = 0.5  # reader and writer tasks: mostly I/O and SimpleITK's own threads
# Memory Ray reserves per reader and writer task: a 512x512x300 scan peaks at 1.9 GiB in a
# reader and 1.7 GiB in a writer (benchmarks/segment.py); without a reservation Ray Data warns
# on the console and may start more of them than the node holds.
STAGE_MEMORY = int(2.5 * 2**30)


@dataclass(frozen=True)
class Options:
    """How a model runs on scans (device, batch, the actors of a batch job) and, for
    ``segment``, what is written (post-processing, sides, probabilities)."""

    device: str = "cpu"
    batch_size: int = 8
    postprocess: bool = True
    sides: bool = False
    probabilities: bool = False
    actors: int = 1
    actor_cpus: float = 1.0
    actor_gpus: float = 0.0
    storage_options: dict[str, Any] = field(default_factory=dict)  # a model given as a URL


def segment_one(job: Job, model: str, options: Options) -> None:
    """Segment one scan in this process (no Ray)."""
    segmenter = Segmenter(model, options.device, options.batch_size, options.storage_options)
    scan = segmenter.prepare(read_volume(job.image, largest_series=True), job.image)
    _write(job, finish(segmenter.predict(scan), scan, options.postprocess, options.sides),
           options)


def segment_batch(jobs: list[Job], model: str, options: Options,
                  progress: bool = True) -> list[tuple[Job, str]]:
    """Segment every job in a Ray Data job; returns the (job, problem) of each failed scan."""
    # readers prepare scans with the model's own settings
    config = export_config(model, "segmenter", options.storage_options)
    return run_batch("segment", jobs, config, (_segmenter, model, options),
                     partial(_write_segmentation, options=options), options, progress)


def run_batch(command: str, jobs: list[Job], config: Config, model: tuple[Callable, ...],
              finish: Callable[[dict[str, Any]], None], options: Options,
              progress: bool = True) -> list[tuple[Job, str]]:
    """Apply a model to every job's scan as one Ray Data job: readers prepare the scans with
    the model's ``config``, ``model`` = (load, *args) is loaded once per actor and maps a row to
    its ``prediction``, ``finish`` writes a row's output. Returns the (job, problem) of each
    failed scan; each prints one line ``raylung COMMAND: FILE: problem``."""
    dataset = ray.data.from_items([{**asdict(j), "error": ""} for j in jobs],
                                  override_num_blocks=len(jobs))
    dataset.context.enable_progress_bars = False
    # Readers and writers run on this node, where the input and output paths are; only the
    # model actors spread over the cluster. The pool grows to --actors only while readers and
    # writers still get CPUs: a fixed pool of 2 one-CPU actors on 2 cores left none to the
    # readers and hung.
    node = ray.get_runtime_context().get_node_id()
    here = {"label_selector": {"ray.io/node-id": node}, "num_cpus": _stage_cpus(node),
            "memory": STAGE_MEMORY}
    dataset = (dataset
               .map(_guarded(_read), fn_kwargs={"config": config}, **here)
               .map(_Model, fn_constructor_args=model,
                    compute=ray.data.ActorPoolStrategy(min_size=1, max_size=options.actors),
                    num_cpus=options.actor_cpus, num_gpus=options.actor_gpus)
               .map(_guarded(_finished(finish)), **here))
    failures = []
    with tqdm(total=len(jobs), desc=command, unit="scan", disable=not progress,
              file=sys.stderr) as bar:
        for row in dataset.iter_rows():
            bar.update(1)
            if row["error"]:
                failures.append((Job(row["name"], row["image"], row["output"]), row["error"]))
                tqdm.write(f"raylung {command}: {row['error']}", file=sys.stderr)
    return failures


def _stage_cpus(node: str) -> float:
    """CPUs a reader or writer reserves on the driver's node: none where the node offers none,
    as on a cluster's head that schedules no work (cluster/), where ``ray job submit`` runs
    the driver; their memory reservation still bounds how many run at once."""
    offered = next(n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["NodeID"] == node)
    return STAGE_CPUS if offered >= STAGE_CPUS else 0.0


def _read(row: dict[str, Any], config: Config) -> dict[str, Any]:
    image = read_volume(row["image"], largest_series=True)
    return {**row, "scan": prepare_scan(image, config, row["image"])}


class _Model:
    """Ray Data actor: ``load(*args)`` once, then one scan's prediction per call. A model
    that cannot load here (e.g. ``--device cuda`` where no GPU is) fails each scan with one
    line, where an actor that died in its constructor would end the job in Ray's traceback."""

    def __init__(self, load: Callable[..., Callable[[dict[str, Any]], Any]], *args: Any) -> None:
        try:
            self.predict, self.problem = load(*args), ""
        except (InputError, ValueError) as err:
            self.predict, self.problem = None, str(err)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if row["error"]:
            return {**row, "prediction": None}
        if self.problem:
            return {**row, "scan": None, "prediction": None, "error": self.problem}
        try:
            return {**row, "prediction": self.predict(row)}
        except Exception as err:  # noqa: BLE001 - one bad scan must not stop the others
            return {**row, "scan": None, "prediction": None, "error": _problem(row, err)}


def _segmenter(model: str, options: Options) -> Callable[[dict[str, Any]], Any]:
    """The lung probability of a row's scan, from a segmenter loaded once."""
    segmenter = Segmenter(model, options.device, options.batch_size, options.storage_options)
    return lambda row: segmenter.predict(row["scan"])


def _finished(finish: Callable[[dict[str, Any]], None]) -> Callable[..., dict[str, Any]]:
    """The writer stage: ``finish`` writes the row's output, the row goes on without arrays."""
    def write(row: dict[str, Any]) -> dict[str, Any]:
        finish(row)
        return {**row, "scan": None, "prediction": None}
    return write


def _write_segmentation(row: dict[str, Any], options: Options) -> None:
    job = Job(row["name"], row["image"], row["output"])
    _write(job, finish(row["prediction"], row["scan"], options.postprocess, options.sides),
           options)


def _write(job: Job, result: Any, options: Options) -> None:
    """The mask (and the probability map) of one scan, each file atomically."""
    if options.probabilities:
        write_image(result.probability, job.probability)
    write_image(result.mask, job.output)


def _guarded(stage: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A stage that passes failed rows through and turns its own failure into the row's error."""
    def run(row: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if row["error"]:
            return row
        try:
            return stage(row, **kwargs)
        except Exception as err:  # noqa: BLE001 - one bad scan must not stop the others
            return {**row, "scan": None, "prediction": None, "error": _problem(row, err)}
    run.__name__ = stage.__name__.strip("_")
    return run


def _problem(row: dict[str, Any], err: Exception) -> str:
    """``FILE: problem`` in one line, URL passwords redacted (a model given as a URL)."""
    if isinstance(err, InputError):
        return redacted(str(err))
    return redacted(f"{row['image']}: {first_line(err)}")
