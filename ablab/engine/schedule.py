"""Learning-rate schedules, per iteration: linear warm-up, then cosine decay to `min_lr` (classification,
pre-training) or polynomial decay to 0 (mmsegmentation's, for segmentation)."""

from __future__ import annotations

import math

import torch


def lr_at(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Learning rate at optimiser step `step` of `total` (warm-up over the first `warmup` steps)."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def poly_lr_at(step: int, total: int, warmup: int, lr: float, power: float) -> float:
    """Learning rate at step `step` of `total`: linear warm-up, then lr * (1 - progress) ** power."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    return lr * (1 - min(1.0, step / max(1, total))) ** power


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's rate: `lr` times the group's `lr_scale` (layer-wise decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
