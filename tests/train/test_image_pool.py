"""The CycleGAN image pool: fills first, then mixes old and new; seeded and checkpointable."""

from __future__ import annotations

import io

import pytest
import torch

from raylung.train.image_pool import ImagePool


def _images(*ids: int) -> torch.Tensor:
    """A batch whose image i is filled with the value i, so outputs can be traced to inputs."""
    return torch.stack([torch.full((1, 2, 2), float(i)) for i in ids])


def _ids(batch: torch.Tensor) -> list[int]:
    return [int(image[0, 0, 0]) for image in batch]


def _stored_ids(pool: ImagePool) -> list[int]:
    return [int(image[0, 0, 0]) for image in pool.state_dict()["images"]]


def test_fills_first_and_returns_the_new_images():
    pool = ImagePool(size=3)
    assert _ids(pool.query(_images(0, 1))) == [0, 1]
    assert _ids(pool.query(_images(2))) == [2]
    assert sorted(_stored_ids(pool)) == [0, 1, 2]


def test_once_full_about_half_are_stored_images_which_the_new_ones_replace():
    pool = ImagePool(size=4, seed=1)
    pool.query(_images(0, 1, 2, 3))
    swapped = 0
    for i in range(4, 1004):
        before = _stored_ids(pool)
        (out,) = _ids(pool.query(_images(i)))
        if out != i:
            swapped += 1
            assert out in before and i in _stored_ids(pool) and out not in _stored_ids(pool)
        else:
            assert _stored_ids(pool) == before
    assert 450 <= swapped <= 550


def test_same_seed_gives_same_outputs_and_other_seed_differs():
    def run(seed: int) -> list[int]:
        pool = ImagePool(size=2, seed=seed)
        return _ids(torch.cat([pool.query(_images(2 * i, 2 * i + 1)) for i in range(20)]))

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_state_round_trip_through_torch_save_gives_identical_next_queries():
    pool = ImagePool(size=3, seed=5)
    for i in range(6):
        pool.query(_images(i))
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)
    buffer.seek(0)
    restored = ImagePool(size=3, seed=99)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for i in range(6, 30):
        assert torch.equal(pool.query(_images(i)), restored.query(_images(i)))


def test_outputs_are_detached_and_stored_images_are_copies():
    pool = ImagePool(size=1)
    image = _images(3).requires_grad_(True)
    assert not pool.query(image).requires_grad
    with torch.no_grad():
        image.zero_()
    assert _stored_ids(pool) == [3]


def test_size_zero_passes_batches_through():
    pool = ImagePool(size=0)
    assert _ids(pool.query(_images(4, 5))) == [4, 5]
    assert len(pool) == 0


def test_negative_size_raises():
    with pytest.raises(ValueError, match="size must be >= 0, got -1"):
        ImagePool(size=-1)


def test_loading_state_of_other_size_raises():
    with pytest.raises(ValueError, match="pool state has size 2, this pool has size 3"):
        ImagePool(size=3).load_state_dict(ImagePool(size=2).state_dict())


def test_a_restored_pool_answers_in_the_query_dtype():
    """A CPU run's fp32 pool resumed on GPUs is queried with bf16 fakes: the stored images
    it hands back are bf16 too, or the discriminator's convolution refuses them."""
    pool = ImagePool(size=1, seed=0)
    pool.query(_images(0))
    out = torch.cat([pool.query(_images(i).bfloat16()) for i in range(1, 20)])
    assert out.dtype == torch.bfloat16 and 0 in _ids(out)
