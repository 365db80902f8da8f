"""A Ray Train worker's side of the data streams: its shards as torch batches, side by side.

Several streams (healthy and pathological, labelled and unlabelled) are advanced together,
each in its own thread, so a stream's start-up (its reader actors) and every later wait
overlap with the others' instead of adding up. The first items are asked for at once, so a
worker that zips its streams before building its engines also overlaps the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import ray.train
import torch

_END = object()


def to_torch(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """Collate for ``iter_torch_batches``: numbers become tensors, ids and domains stay lists."""
    # Ray hands out read-only views of its object store; torch wants writable memory.
    return {k: torch.as_tensor(np.require(v, requirements="W")) if v.dtype.kind in "biuf"
            else v.tolist() for k, v in batch.items()}


def rank_stream(name: str, rank: int) -> str:
    """The name of worker ``rank``'s own dataset of the stream ``name`` (``runner.per_worker``);
    no slash: Ray Data names its log folders after datasets."""
    return f"{name}_rank{rank}"


def shard_batches(name: str, batch_size: int) -> Iterator[dict[str, Any]]:
    """This worker's own dataset of the stream ``name`` as batches of tensors."""
    rank = ray.train.get_context().get_world_rank()
    return iter(ray.train.get_dataset_shard(rank_stream(name, rank)).iter_torch_batches(
        batch_size=batch_size, collate_fn=to_torch, drop_last=True))


def zip_streams(*streams: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    """Like ``zip``, but each step fetches the next item of every stream concurrently, and
    the first items are fetched from the call on (the streams start while the caller works)."""
    iterators = [iter(s) for s in streams]
    pool = ThreadPoolExecutor(len(iterators), thread_name_prefix="stream")
    return _zipped(pool, iterators, [pool.submit(next, it, _END) for it in iterators])


def _zipped(pool: ThreadPoolExecutor, iterators: list[Iterator[Any]],
            pending: list[Future]) -> Iterator[tuple[Any, ...]]:
    with pool:
        while True:
            items = [f.result() for f in pending]
            if any(item is _END for item in items):
                return
            yield tuple(items)
            pending = [pool.submit(next, it, _END) for it in iterators]
