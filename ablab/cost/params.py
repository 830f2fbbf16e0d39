"""Exact parameter count, in total and per module."""

from __future__ import annotations

from torch import nn

from ..arch.spec import ArchSpec


def count_params(model: nn.Module) -> int:
    """Number of learnable parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def params_table(spec: ArchSpec, max_depth: int = 3) -> str:
    """fvcore's per-module parameter table of `spec`'s model down to `max_depth` levels (stem, stages, blocks,
    their layers), built on the meta device so that a paper-scale model costs no memory."""
    import torch
    from fvcore.nn import parameter_count_table

    from ..arch.build import build

    with torch.device("meta"):
        model = build(spec)
    return parameter_count_table(model, max_depth=max_depth)
