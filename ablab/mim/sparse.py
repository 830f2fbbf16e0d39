"""Sparse execution of a built Net on the visible mask units only: MAE's encoder for hierarchical specs.

Tokens are kept unit-major: (B, prefix + V * t, C) for V visible units of t = s * s tokens each (s = a unit's
side in tokens at the current stage, halving at every 2x2 merge or Q pool), tokens row-major inside a unit; in a
clip a unit is one token frame deep, so the units of all token frames are simply more units. Operators that stay
inside a unit (MLPs, patch merging, kernel = stride pooling, every pool of a model with Hiera's separate-and-pad,
mask-unit attention, window attention whose window is exactly the unit) run on (B * V, t, C); global attention
runs on every visible token of a sample (with K and V pooled inside units), with absolute embeddings and
relative positions (Swin's table, MViTv2's decomposed ones) looked up at the tokens' grid positions.
That is the same computation as the dense model with masked tokens removed from the keys (tested), using the
model's own weights. Masked pixels are zeroed before the stem, so an overlapping stem (Hiera's 7x7 conv) reads
zeros there, as in Hiera. Operators that would read masked tokens -- overlapping pools without separate-and-pad,
windows that cross units, shifted windows, 1D token pooling -- are refused with a SparseError that names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..arch.build import Net
from ..arch.spec import ArchSpec, canonical
from ..nn.attention import Attention
from ..nn.blocks import Block
from ..nn.embed import PatchMerge
from ..nn.position import DecomposedRelPos
from ..settings import units_per_side
from .masking import pixel_mask, visible_indices


class SparseError(ValueError):
    """A spec with an operator that mixes masked and visible tokens; the message names it and where."""


def check_sparse(spec: ArchSpec, unit_px: int) -> list[int]:
    """A mask unit's side in tokens after each stage; SparseError naming the first operator (as its kind declares)
    that would read across mask units."""
    try:
        units_per_side(spec.img_size, spec.patch_size, unit_px)
    except ValueError as e:
        raise SparseError(str(e)) from None
    separated = spec.mask_unit * spec.patch_size
    if canonical(spec).separate_and_pad and unit_px != separated:
        raise SparseError(f"the model pools inside mask units of {separated} px (separate_and_pad); pre-train with "
                          f"mask_unit {separated}, not {unit_px}")
    side, sides = unit_px // spec.patch_size, []
    for ctx in spec.contexts():
        reason = ctx.downsample.sparse(ctx, side)
        side = side // 2 if ctx.downsample.halves else side
        reason = reason or ctx.block.sparse(ctx, side)
        if reason:
            raise SparseError(f"stage {ctx.index + 1}: {reason}")
        sides.append(side)
    return sides


@dataclass
class SparseTokens:
    """Unit-major tokens of the visible units: x (B, prefix + V * side^2, C) and where they sit."""

    x: torch.Tensor
    units: torch.Tensor  # (B, V) visible unit indices, row-major on the (token frame, row, column) unit grid
    per_side: int
    side: int  # a unit's side in tokens at this point
    prefix: int  # class tokens in front

    def coords(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(token frame, row, column) of every unit token on the current dense grid, each (B, V * side^2)."""
        s, p, dev = self.side, self.per_side, self.units.device
        ut, rest = self.units // (p * p), self.units % (p * p)
        iy, ix = torch.meshgrid(torch.arange(s, device=dev), torch.arange(s, device=dev), indexing="ij")
        gy = (rest // p)[:, :, None] * s + iy.flatten()
        gx = (rest % p)[:, :, None] * s + ix.flatten()
        return ut[:, :, None].expand_as(gy).flatten(1), gy.flatten(1), gx.flatten(1)

    def grid_index(self) -> torch.Tensor:
        """(B, V * side^2) row-major index of every token on the current dense grid (frame-major in a clip)."""
        t, y, x = self.coords()
        g = self.per_side * self.side
        return (t * g + y) * g + x

    def split(self) -> tuple[Optional[torch.Tensor], torch.Tensor]:
        """(prefix tokens or None, unit tokens (B * V, side^2, C))."""
        b, c, v = self.x.shape[0], self.x.shape[-1], self.units.shape[1]
        head = self.x[:, :self.prefix] if self.prefix else None
        return head, self.x[:, self.prefix:].reshape(b * v, self.side * self.side, c)

    def join(self, head: Optional[torch.Tensor], units: torch.Tensor, side: int) -> "SparseTokens":
        """Tokens from per-unit (B * V, side^2, C) maps (and the prefix), at a unit side of `side`."""
        b = self.units.shape[0]
        x = units.reshape(b, -1, units.shape[-1])
        x = torch.cat([head, x], dim=1) if head is not None else x
        return SparseTokens(x, self.units, self.per_side, side, self.prefix)


def to_units(tokens: torch.Tensor, units: torch.Tensor, per_side: int, side: int) -> torch.Tensor:
    """Dense row-major tokens (B, T * (per_side * side)^2, C) -> the visible units' tokens (B, V * side^2, C)."""
    b, _, c = tokens.shape
    x = tokens.view(b, -1, per_side, side, per_side, side, c).permute(0, 1, 2, 4, 3, 5, 6)
    x = x.reshape(b, -1, side * side, c)  # B, T * per_side^2, side^2, C
    return x.gather(1, units[:, :, None, None].expand(-1, -1, side * side, c)).flatten(1, 2)


def sparse_forward(net: Net, images: torch.Tensor, mask: torch.Tensor, unit_px: int) -> list[SparseTokens]:
    """Every stage's output on the visible units of `mask` ((B, units) bool, True = visible); the last one is
    normalised like `Net.forward_features` when the spec norms tokens."""
    spec = net.spec
    check_sparse(spec, unit_px)
    per_side = spec.img_size // unit_px
    units = visible_indices(mask)
    side = unit_px // spec.patch_size
    # an overlapping stem (Hiera's 7x7, 3x7x7 on clips) sees zeros, not masked pixels
    tokens = net.patch_embed(images * pixel_mask(mask, spec, unit_px))
    t = SparseTokens(to_units(tokens, units, per_side, side), units, per_side, side, 0)
    outputs = []
    for stage in net.stages:
        if isinstance(stage.downsample, PatchMerge):
            head, x = t.split()
            t = t.join(head, stage.downsample(x, grid=t.side), t.side // 2)
        if stage.cls_token is not None:
            t = SparseTokens(torch.cat([stage.cls_token.expand(t.x.shape[0], -1, -1), t.x], 1), t.units, per_side,
                             t.side, t.prefix + 1)
        table = stage.position_table()
        if table is not None:
            t.x = t.x + _gather_tokens(table.expand(t.x.shape[0], -1, -1), t)
        for block in stage.blocks:
            t = _block(block, t)
        outputs.append(t)
    if spec.head_norm == "tokens":
        last = outputs[-1]
        outputs[-1] = SparseTokens(net.norm(last.x), last.units, per_side, last.side, last.prefix)
    return outputs


def _gather_tokens(dense: torch.Tensor, t: SparseTokens) -> torch.Tensor:
    """Rows of a dense (B, prefix + N, C) tensor at the prefix and the visible tokens of `t`."""
    index = torch.cat([torch.arange(t.prefix, device=dense.device).expand(dense.shape[0], -1),
                       t.grid_index() + t.prefix], dim=1)
    return dense.gather(1, index[:, :, None].expand(-1, -1, dense.shape[-1]))


def _block(block: Block, t: SparseTokens) -> SparseTokens:
    """One block on unit-major tokens: MLPs token-wise; attention inside each unit (mask units, windows of exactly
    one unit, Hiera's transition block) or over all of a sample's visible tokens; shortcuts pooled inside units."""
    if block.attn is None:
        return SparseTokens(block(t.x), t.units, t.per_side, t.side, t.prefix)
    b, v, s = t.x.shape[0], t.units.shape[1], t.side
    xn = block.norm1(t.x)
    shortcut = block.shortcut_proj_attn(xn) if block.shortcut_proj_attn is not None else t.x
    if block.shortcut_pool is not None:
        maps = shortcut.reshape(b * v, s, s, -1).permute(0, 3, 1, 2)
        shortcut = block.shortcut_pool(maps).flatten(2).transpose(1, 2).reshape(b, -1, shortcut.shape[-1])
    out, side = _attention(block.attn, xn, t)
    x = shortcut + block.drop_path(out)
    xn = block.norm2(x)
    shortcut = block.shortcut_proj_mlp(xn) if block.shortcut_proj_mlp is not None else x
    return SparseTokens(shortcut + block.drop_path(block.mlp(xn)), t.units, t.per_side, side, t.prefix)


def _attention(attn: Attention, xn: torch.Tensor, t: SparseTokens) -> tuple[torch.Tensor, int]:
    """xn (B, prefix + V * s^2, C) -> ((B, prefix + V * s'^2, dim), s'), tokens unit-major: Q, K and V pooled inside
    units (checked: kernel = stride, or the model separates its pools), attention inside each unit or across all
    visible tokens of a sample."""
    b, v, s = xn.shape[0], t.units.shape[1], t.side
    if attn.window < attn.side:  # a window that is exactly one unit (checked): attention inside each unit
        out = attn.attend_windows(xn.reshape(b * v, s * s, -1))
        return attn.proj(out.reshape(b, -1, attn.dim)), attn.q_side
    q, k, val = attn.heads_of(xn)  # B, heads, V * s^2, d: the pools see each unit as a frame of its own
    q, k, val = (attn.pooled(pool, x, s) for pool, x in ((attn.pool_q, q), (attn.pool_k, k), (attn.pool_v, val)))
    q_side, kv_side = (int(round(((x.shape[2] - t.prefix) // v) ** 0.5)) for x in (q, k))
    if isinstance(attn.rel_pos, DecomposedRelPos):
        at = SparseTokens(t.x, t.units, t.per_side, q_side, t.prefix).coords()
        bias = attn.rel_pos.at(q, at, SparseTokens(t.x, t.units, t.per_side, kv_side, t.prefix).coords())
    else:
        bias = _gather_bias(attn.bias(), t) if attn.rel_pos is not None else None
    out = attn.attend(q, k, val, attn.materialise(bias, q))
    if attn.residual_pooling:
        out = out + q
    return attn.proj(out.transpose(1, 2).reshape(b, -1, attn.dim)), q_side


def _gather_bias(bias: torch.Tensor, t: SparseTokens) -> torch.Tensor:
    """A dense (heads, prefix + N, prefix + N) attention bias at the visible tokens: (B, heads, n, n)."""
    index = torch.cat([torch.arange(t.prefix, device=bias.device).expand(t.x.shape[0], -1),
                       t.grid_index() + t.prefix], dim=1)  # B, n
    return bias[:, index[:, :, None], index[:, None, :]].permute(1, 0, 2, 3)
