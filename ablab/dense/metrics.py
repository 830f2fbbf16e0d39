"""Semantic segmentation's metric: mean intersection over union from a confusion matrix accumulated over pixels
(ADE20K's protocol: classes absent from both prediction and ground truth are left out of the mean; pixels labelled
`ignore` are not counted)."""

from __future__ import annotations

import torch


def confusion(pred: torch.Tensor, target: torch.Tensor, classes: int, ignore: int = 255) -> torch.Tensor:
    """(classes, classes) counts, rows the true class and columns the predicted one, over every pixel of `pred`
    and `target` (same shape, class indices) whose target is not `ignore`."""
    keep = target != ignore
    index = target[keep].long() * classes + pred[keep].long()
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes)


def iou(matrix: torch.Tensor) -> torch.Tensor:
    """Each class's intersection over union (NaN for a class neither predicted nor present)."""
    matrix = matrix.double()
    hit = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - hit
    return torch.where(union > 0, hit / union.clamp(min=1), torch.full_like(hit, float("nan")))


def miou(matrix: torch.Tensor) -> float:
    """Mean IoU in percent over the classes that occur in the prediction or the ground truth."""
    per_class = iou(matrix)
    return float(per_class[~per_class.isnan()].mean() * 100)
