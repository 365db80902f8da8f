"""A Ray Train worker's side of the data streams: its shards as torch batches, side by side.

Several streams (healthy and pathological, labelled and unlabelled) are advanced together,
each in its own thread, so a stream's start-up (its reader actors) and every later wait
overlap with the others' instead of adding up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
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


def shard_batches(name: str, batch_size: int, drop_last: bool = True) -> Iterator[dict[str, Any]]:
    """This worker's shard of the dataset ``name`` as batches of tensors."""
    return iter(ray.train.get_dataset_shard(name).iter_torch_batches(
        batch_size=batch_size, collate_fn=to_torch, drop_last=drop_last))


def zip_streams(*streams: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    """Like ``zip``, but each step fetches the next item of every stream concurrently."""
    iterators = [iter(s) for s in streams]
    with ThreadPoolExecutor(len(iterators), thread_name_prefix="stream") as pool:
        while True:
            items = [f.result() for f in [pool.submit(next, it, _END) for it in iterators]]
            if any(item is _END for item in items):
                return
            yield tuple(items)
