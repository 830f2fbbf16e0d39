"""Random masks over mask units: square patches of the image, coarser than a hierarchical model's tokens.

A mask unit is `unit` pixels wide (Hiera and GreenMIM: 32 px, the largest token of the encoder; MAE on ViT and
HiViT: 16 px) and, in a clip, one token frame deep (Hiera's 1 x 8 x 8-token video units), so every stage of the
encoder sees whole units. Masks are boolean (B, T * Uy * Ux), True where a unit is *visible*, row-major (token
frame, row, column); every sample keeps the same number of units, so visible tokens stack into a tensor.
`batchwise` draws one mask for the whole batch (GreenMIM Section 3.5): every sample then has the same windows
with the same visible tokens, and the grouping of visible tokens is computed once per batch.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..arch.spec import ArchSpec
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
    """(B, T * per_side^2) unit mask (T token frames, one unit deep each; T = 1: an image) -> the row-major token
    mask (B, T * (per_side * tokens_per_unit)^2) at a stage whose unit is `tokens_per_unit` tokens wide."""
    b, t = mask.shape[0], mask.shape[1] // (per_side * per_side)
    m = mask.view(b, t, per_side, 1, per_side, 1).expand(b, t, per_side, tokens_per_unit, per_side, tokens_per_unit)
    return m.reshape(b, t * (per_side * tokens_per_unit) ** 2)


def pixel_mask(mask: torch.Tensor, spec: ArchSpec, unit: int) -> torch.Tensor:
    """The unit mask at the input's pixels, broadcastable over channels: (B, 1, H, W), or (B, 1, T, H, W) for a
    clip, where a token frame's unit covers its patch_t input frames (Hiera's resized mask)."""
    per_side = spec.img_size // unit
    pixels = token_mask(mask, per_side, unit).view(mask.shape[0], 1, spec.t_tokens, spec.img_size, spec.img_size)
    if spec.frames == 1:
        return pixels[:, :, 0]
    frames = pixels.repeat_interleave(spec.patch_t, dim=2)[:, :, :spec.frames]
    if frames.shape[2] < spec.frames:  # a padded temporal stem's last frames: the last token frame's units
        frames = torch.cat([frames, frames[:, :, -1:].expand(-1, -1, spec.frames - frames.shape[2], -1, -1)], dim=2)
    return frames
