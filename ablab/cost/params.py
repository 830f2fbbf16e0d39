"""Exact parameter count."""

from __future__ import annotations

from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of learnable parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())
