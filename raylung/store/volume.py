"""Chunk I/O of one stored zarr v3 array: TensorStore on a local disk, zarr-python elsewhere.

zarr-python reads and decodes a sharded array's inner chunks one at a time, which makes small
chunks 5-30x slower to read and write (measured in benchmarks/ingest.py). TensorStore reads the
same arrays concurrently in C++, so raylung can store small inner chunks (low read
amplification for patches) without losing throughput. Arrays are always created, and object
stores always accessed, with zarr-python; TensorStore only moves the chunk bytes of local arrays.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Protocol

import numpy as np
import tensorstore as ts


class Volume(Protocol):
    """What raylung needs of a stored array: its geometry and numpy in, numpy out."""

    shape: tuple[int, ...]
    dtype: Any

    def __getitem__(self, index: Any) -> np.ndarray: ...

    def __setitem__(self, index: Any, value: np.ndarray) -> None: ...


class LocalVolume:
    """A zarr v3 array on a local disk read and written through TensorStore."""

    def __init__(self, path: str) -> None:
        self._array = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": path}},
                              context=_context()).result()
        self.path = path
        self.shape = tuple(self._array.shape)
        self.dtype = self._array.dtype.numpy_dtype

    def __getitem__(self, index: Any) -> np.ndarray:
        return self._array[index].read().result()

    def __setitem__(self, index: Any, value: np.ndarray) -> None:
        self._array[index].write(value).result()


@functools.cache
def _context() -> ts.Context:
    """One TensorStore context per process: no chunk cache (crops are random, so a cache would
    only hold memory), and as many decoding threads as the process has CPUs. Ray tells its
    workers their share in OMP_NUM_THREADS; without that limit every reader actor decoded on
    all cores and two actors on two cores streamed 10-25 % slower (issue 3 note)."""
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    return ts.Context({"cache_pool": {"total_bytes_limit": 0},
                       "data_copy_concurrency": {"limit": threads}})
