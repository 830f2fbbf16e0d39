"""Learning-rate schedules, per iteration: linear warm-up, then cosine decay to `min_lr` (classification,
pre-training), polynomial decay to 0 (mmsegmentation's, for segmentation) or steps of x 0.1 (mmdetection's, for
detection)."""

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


def step_lr_at(step: int, steps_per_epoch: int, warmup: int, lr: float, lr_steps: tuple[int, ...],
               gamma: float = 0.1) -> float:
    """Learning rate at step `step`: linear warm-up, then lr times `gamma` for every epoch of `lr_steps` passed
    (mmdetection's 1x: x 0.1 after epochs 8 and 11 of 12)."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    return lr * gamma ** sum(step >= at * steps_per_epoch for at in lr_steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's rate: `lr` times the group's `lr_scale` (layer-wise decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
