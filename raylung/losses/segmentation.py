"""Segmenter losses: supervised Dice + cross-entropy, and confident pseudo-labels of a teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss


def supervised_loss() -> DiceCELoss:
    """Dice + cross-entropy on two-channel logits against an integer mask (B, 1, ...).

    Dice keeps the small lung apices from being ignored; cross-entropy gives smooth early
    gradients (the nnU-Net default pairing).
    """
    return DiceCELoss(to_onehot_y=True, softmax=True)


def pseudo_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      threshold: float) -> tuple[torch.Tensor, float]:
    """Cross-entropy of the student against the teacher's labels where the teacher's
    probability is at least ``threshold``; also returns the share of such voxels.

    >>> t = torch.tensor([[[4.0, -4.0]], [[-4.0, 4.0]]]).permute(1, 0, 2)  # (1, 2, 2) sure
    >>> loss, share = pseudo_label_loss(t, t, 0.9)
    >>> round(loss.item(), 4), share
    (0.0003, 1.0)
    """
    probs = teacher_logits.detach().softmax(dim=1)
    confidence, labels = probs.max(dim=1)
    sure = confidence >= threshold
    if not sure.any():
        return student_logits.sum() * 0.0, 0.0
    voxel_loss = F.cross_entropy(student_logits, labels, reduction="none")
    return voxel_loss[sure].mean(), float(sure.float().mean())
