"""Segmenter losses on tiny tensors."""

from __future__ import annotations

import torch

from raylung.losses.segmentation import pseudo_label_loss, supervised_loss


def test_supervised_loss_is_small_for_a_confident_right_answer_and_large_for_a_wrong_one():
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    mask[..., 1:3, 1:3] = 1
    right = torch.cat([1 - mask, mask], dim=1).float() * 20 - 10
    loss = supervised_loss()
    assert loss(right, mask).item() < 0.01
    assert loss(-right, mask).item() > 1.0


def test_pseudo_labels_only_where_the_teacher_is_sure():
    teacher = torch.tensor([[[[5.0, 0.1]]], [[[-5.0, 0.0]]]]).permute(1, 0, 2, 3)  # (1,2,1,2)
    student = torch.zeros(1, 2, 1, 2, requires_grad=True)
    loss, share = pseudo_label_loss(student, teacher, threshold=0.9)
    assert share == 0.5                                   # only the first voxel is sure
    assert torch.isclose(loss, torch.log(torch.tensor(2.0)))
    loss.backward()
    assert student.grad[..., 1].abs().sum() == 0          # the unsure voxel gets no gradient
    nothing, none = pseudo_label_loss(student, teacher, threshold=1.0)
    assert nothing.item() == 0.0 and none == 0.0
