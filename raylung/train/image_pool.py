"""The CycleGAN history of generated images the discriminators see (Shrivastava et al. 2017).

Showing the discriminator older fakes as well as the newest keeps it from chasing the
generator's latest mode, which damps oscillation. The pool has its own seeded RNG and a
``state_dict``, so a resumed run draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import random
from typing import Any

import torch


class ImagePool:
    """Buffer of up to ``size`` generated images; ``size=0`` passes every batch straight through.

    >>> pool = ImagePool(size=2, seed=0)
    >>> pool.query(torch.zeros(2, 1, 4, 4)).shape
    torch.Size([2, 1, 4, 4])
    >>> len(pool)
    2
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size = size
        self._rng = random.Random(seed)
        self._images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self._images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """A detached batch like ``images``: each item is the new image or, once the pool is full,
        with probability 0.5 a stored one (which the new image then replaces)."""
        images = images.detach()
        if self.size == 0:
            return images
        return torch.stack([self._swap(image) for image in images])

    def _swap(self, image: torch.Tensor) -> torch.Tensor:
        """Store, or exchange with a stored image, one image of shape (C, *spatial)."""
        if len(self._images) < self.size:
            self._images.append(image.clone())
            return image
        if self._rng.random() < 0.5:
            index = self._rng.randrange(self.size)
            stored, self._images[index] = self._images[index], image.clone()
            # A pool restored on the CPU may be queried with GPU images, and a CPU run's
            # fp32 pool with bf16 ones once the run resumes on GPUs.
            return stored.to(image.device, image.dtype)
        return image

    def state_dict(self) -> dict[str, Any]:
        """Stored images and RNG state, for a checkpoint (loadable with ``weights_only=True``)."""
        return {"size": self.size, "images": list(self._images), "rng": self._rng.getstate()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``; the next queries then match those of the saved pool."""
        if state["size"] != self.size:
            raise ValueError(f"pool state has size {state['size']}, this pool has size {self.size}")
        if len(state["images"]) > self.size:
            raise ValueError(f"pool state holds {len(state['images'])} images, "
                             f"more than size {self.size}")
        self._images = list(state["images"])
        self._rng.setstate(state["rng"])
