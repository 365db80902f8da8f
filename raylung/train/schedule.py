"""Learning-rate schedule of CycleGAN: constant, then linear decay to zero.

A class rather than a closure so ``LambdaLR.state_dict()`` saves it and checkpoints can pickle it.
"""

from __future__ import annotations


class LinearDecay:
    """LR factor: 1.0 before ``decay_start``, then linear down to 0.0 at ``total_steps`` and after.

    >>> f = LinearDecay(total_steps=100, decay_start=50)
    >>> f(0), f(50), f(75), f(100)
    (1.0, 1.0, 0.5, 0.0)
    """

    def __init__(self, total_steps: int, decay_start: int) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not 0 <= decay_start <= total_steps:
            raise ValueError(f"decay_start must be in [0, total_steps={total_steps}], "
                             f"got {decay_start}")
        self.total_steps = total_steps
        self.decay_start = decay_start

    def __call__(self, step: int) -> float:
        """The factor by which the base learning rate is multiplied at ``step``."""
        if step < self.decay_start:
            return 1.0
        if step >= self.total_steps:
            return 0.0
        return 1.0 - (step - self.decay_start) / (self.total_steps - self.decay_start)

    def __repr__(self) -> str:
        return f"LinearDecay(total_steps={self.total_steps}, decay_start={self.decay_start})"


def linear_decay_lambda(total_steps: int, decay_start: int) -> LinearDecay:
    """The ``lr_lambda`` for ``torch.optim.lr_scheduler.LambdaLR`` (picklable, checkpointable)."""
    return LinearDecay(total_steps, decay_start)
