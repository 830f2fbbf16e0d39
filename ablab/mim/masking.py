"""Random masks over mask units: square patches of the image, coarser than a hierarchical model's tokens.

A mask unit is `unit` pixels wide (Hiera and GreenMIM: 32 px, the largest token of the encoder; MAE on ViT and
HiViT: 16 px), so every stage of the encoder sees whole units. Masks are boolean (B, Uy * Ux), True where a unit
is *visible*, row-major; every sample keeps the same number of units, so visible tokens stack into a tensor.
`batchwise` draws one mask for the whole batch (GreenMIM Section 3.5): every sample then has the same windows
with the same visible tokens, and the grouping of visible tokens is computed once per batch.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..settings import visible_count


class MaskError(ValueError):
    """A mask that does not fit the encoder's tokens; the message says which sizes."""


def random_mask(batch: int, units: int, ratio: float, generator: Optional[torch.Generator] = None,
                batchwise: bool = False, device: str | torch.device = "cpu") -> torch.Tensor:
    """(batch, units) bool, True = visible: a uniformly random subset of `visible_count` units per sample
    (one subset for the whole batch when `batchwise`)."""
    keep = visible_count(units, ratio)
    rows = 1 if batchwise else batch
    noise = torch.rand(rows, units, generator=generator)
    order = noise.argsort(dim=1)
    mask = torch.zeros(rows, units, dtype=torch.bool)
    mask.scatter_(1, order[:, :keep], True)
    return mask.expand(batch, units).to(device) if batchwise else mask.to(device)


def visible_indices(mask: torch.Tensor) -> torch.Tensor:
    """(B, units) bool -> (B, keep) long: the visible units of each sample in row-major order."""
    keep = int(mask[0].sum())
    if not bool((mask.sum(dim=1) == keep).all()):
        raise MaskError("every sample must keep the same number of units")
    return mask.float().argsort(dim=1, descending=True, stable=True)[:, :keep].sort(dim=1).values


def token_mask(mask: torch.Tensor, per_side: int, tokens_per_unit: int) -> torch.Tensor:
    """(B, per_side^2) unit mask -> (B, (per_side * tokens_per_unit)^2) row-major token mask at a stage whose
    unit is `tokens_per_unit` tokens wide."""
    b = mask.shape[0]
    m = mask.view(b, per_side, 1, per_side, 1).expand(b, per_side, tokens_per_unit, per_side, tokens_per_unit)
    return m.reshape(b, (per_side * tokens_per_unit) ** 2)
