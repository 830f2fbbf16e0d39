"""mIoU from a confusion matrix, against a case computed by hand."""

import pytest
import torch

from ablab.dense.metrics import confusion, iou, miou


def test_miou_of_a_hand_computed_case():
    target = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 1]])  # the last pixel is ignored whatever it says
    m = confusion(pred, target, classes=4)
    assert m.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    # class 0: 2 / (3 + 3 - 2); class 1: 2 / (2 + 3 - 2); class 2: 1 / (1 + 2 - 1); class 3: absent, left out
    expected = [2 / 4, 2 / 3, 1 / 2]
    assert iou(m)[:3].tolist() == pytest.approx(expected) and torch.isnan(iou(m)[3])
    assert miou(m) == pytest.approx(100 * sum(expected) / 3)


def test_a_perfect_prediction_scores_100_and_counts_add_up():
    target = torch.randint(0, 5, (3, 8, 8))
    assert miou(confusion(target, target, classes=5)) == pytest.approx(100.0)
    assert int(confusion(torch.zeros_like(target), target, classes=5).sum()) == target.numel()
