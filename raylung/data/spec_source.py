"""Sample specs as a Ray Data source: each epoch's specs are drawn by its own read task.

The driver holds one small read task per epoch, not the specs, so its memory and start-up
time do not grow with the number of epochs; a read task redraws its epoch from
(data.seed, epoch, stream) exactly as ``draw_specs`` does, so replay stays exact. A source of
``shard=(rank, world)`` keeps every world-th spec from the rank-th: one training worker's own.
Each shard's read task draws its whole epoch and keeps its slice: drawing a spec costs
microseconds, and an epoch stays one random sequence whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd
import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from raylung.config import DataConfig
from raylung.data.specs import draw_specs


class SpecSource(Datasource):
    """The specs of shard ``(rank, world)`` of each epoch in ``epochs`` (``samples_per_epoch /
    world`` each), in epoch order, one read task per epoch. ``inputs`` is the object store's
    (cases, lung centres) of the stream, put once for all shards."""

    def __init__(self, inputs: ray.ObjectRef, cfg: DataConfig, epochs: Sequence[int],
                 stream: str, shard: tuple[int, int] = (0, 1)) -> None:
        self._inputs = inputs
        self._cfg = cfg
        self._epochs = list(epochs)
        self._stream = stream
        self._shard = shard

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        rows = self._cfg.samples_per_epoch // self._shard[1]
        return [ReadTask(self._reader(epoch), BlockMetadata(num_rows=rows, size_bytes=None,
                                                            exec_stats=None, input_files=None),
                         per_task_row_limit=per_task_row_limit)
                for epoch in self._epochs]

    def _reader(self, epoch: int):
        inputs, cfg, stream, (rank, world) = self._inputs, self._cfg, self._stream, self._shard

        def read() -> Iterator[pd.DataFrame]:
            cases, centres = ray.get(inputs)
            yield pd.DataFrame(draw_specs(cases, centres, cfg, epoch, stream)[rank::world])
        return read
