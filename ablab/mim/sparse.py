"""Sparse execution of a built Net on the visible mask units only: MAE's encoder for hierarchical specs.

Tokens are kept unit-major: (B, prefix + V * t, C) for V visible units of t = s * s tokens each (s = a unit's
side in tokens at the current stage, halving at every 2x2 merge or Q pool), tokens row-major inside a unit.
Operators that stay inside a unit (MLPs, patch merging, kernel = stride pooling, mask-unit attention, window
attention whose window is exactly the unit) run on (B * V, t, C); global attention runs on every visible token
of a sample, with absolute embeddings and relative position biases looked up at the tokens' grid positions.
That is the same computation as the dense model with masked tokens removed from the keys (tested), using the
model's own weights. Masked pixels are zeroed before the stem, so an overlapping stem (Hiera's 7x7 conv) reads
zeros there, as in Hiera. Operators that would read masked tokens -- overlapping convs or pools, KV pooling,
decomposed relative positions, windows that cross units, shifted windows, 1D token pooling -- are refused
with a SparseError that names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..build import Net
from ..nn.blocks import Block
from ..nn.embed import PatchMerge
from ..nn.pooling import Pool2d, PoolingAttention, PoolingBlock
from ..spec import ArchSpec, effective_window
from .masking import MaskError, token_mask, units_per_side, visible_indices


class SparseError(ValueError):
    """A spec with an operator that mixes masked and visible tokens; the message names it and where."""


def check_sparse(spec: ArchSpec, unit_px: int) -> list[int]:
    """A mask unit's side in tokens after each stage; SparseError naming the first operator that would read
    across mask units."""
    try:
        units_per_side(spec.img_size, spec.patch_size, unit_px)
    except MaskError as e:
        raise SparseError(str(e)) from None
    side, sides, grids = unit_px // spec.patch_size, [], spec.grids()
    if any(st.attention == "mask_unit" for st in spec.stages) and spec.mask_unit != side:
        raise SparseError(f"mask-unit attention works on units of {spec.mask_unit} stem tokens, the {unit_px} px "
                          f"mask unit is {side}: set mask_unit to {spec.mask_unit * spec.patch_size} px")
    for i, st in enumerate(spec.stages):
        where = f"stage {i + 1}"
        if st.downsample == "token_pool":
            raise SparseError(f"{where}: 1D token pooling (HVT) pools along the whole token sequence, across units")
        if st.downsample in ("patch_merge", "q_pool"):
            if side % 2:
                raise SparseError(f"{where}: a {unit_px} px mask unit is {side} tokens wide here: 2x2 "
                                  "downsampling would merge tokens of different units")
            if st.downsample == "q_pool" and st.q_kernel != 2:
                raise SparseError(f"{where}: Q pooling with kernel {st.q_kernel} > stride 2 overlaps mask units "
                                  "(kernel_equals_stride makes it sparse)")
            side //= 2
        if st.multiscale:
            _check_pooling_stage(st, where)
        elif st.block == "attention" and st.attention == "window" and grids[i]:
            window = effective_window(grids[i], st.window)
            if window < grids[i] and (window != side or st.shift):
                raise SparseError(f"{where}: {'shifted ' if st.shift else ''}window attention on {window}x{window} "
                                  f"windows crosses {side}x{side}-token mask units (GreenMIM's group window "
                                  "attention runs it sparse: method greenmim)")
        sides.append(side)
    return sides


def _check_pooling_stage(st, where: str) -> None:
    """MViTv2 / Hiera operators that read across units: decomposed rel-pos, KV pooling, stride-1 pools."""
    if st.rel_pos == "decomposed":
        raise SparseError(f"{where}: decomposed relative positions are tied to the dense grid")
    if st.pools_kv:
        raise SparseError(f"{where}: KV pooling (kernel {st.kv_kernel}, stride {st.kv_stride}) pools across mask "
                          "units (mask_unit_attention replaces it)")
    if st.pool_stride1 and st.q_kernel > 1:
        raise SparseError(f"{where}: stride-1 {st.pool} pools of kernel {st.q_kernel} read neighbouring units")


@dataclass
class SparseTokens:
    """Unit-major tokens of the visible units: x (B, prefix + V * side^2, C) and where they sit."""

    x: torch.Tensor
    units: torch.Tensor  # (B, V) visible unit indices, row-major on the per_side x per_side unit grid
    per_side: int
    side: int  # a unit's side in tokens at this point
    prefix: int  # class tokens in front

    def grid_index(self) -> torch.Tensor:
        """(B, V * side^2) row-major index of every token on the current dense grid."""
        s, g = self.side, self.per_side * self.side
        uy, ux = self.units // self.per_side, self.units % self.per_side  # B, V
        iy, ix = torch.meshgrid(torch.arange(s, device=self.units.device), torch.arange(s, device=self.units.device),
                                indexing="ij")
        gy = uy[:, :, None] * s + iy.flatten()
        gx = ux[:, :, None] * s + ix.flatten()
        return (gy * g + gx).flatten(1)

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
    """Dense row-major tokens (B, (per_side * side)^2, C) -> the visible units' tokens (B, V * side^2, C)."""
    b, _, c = tokens.shape
    x = tokens.view(b, per_side, side, per_side, side, c).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, per_side * per_side, side * side, c)
    return x.gather(1, units[:, :, None, None].expand(-1, -1, side * side, c)).flatten(1, 2)


def sparse_forward(net: Net, images: torch.Tensor, mask: torch.Tensor, unit_px: int) -> list[SparseTokens]:
    """Every stage's output on the visible units of `mask` ((B, units) bool, True = visible); the last one is
    normalised like `Net.forward_features` when the spec norms tokens."""
    spec = net.spec
    check_sparse(spec, unit_px)
    per_side = spec.img_size // unit_px
    units = visible_indices(mask)
    side = unit_px // spec.patch_size
    pixels = token_mask(mask, per_side, unit_px).view(-1, 1, spec.img_size, spec.img_size)
    tokens = net.patch_embed(images * pixels)  # an overlapping stem (Hiera's 7x7) sees zeros, not masked pixels
    t = SparseTokens(to_units(tokens, units, per_side, side), units, per_side, side, 0)
    outputs = []
    for stage in net.stages:
        if isinstance(stage.downsample, PatchMerge):
            head, x = t.split()
            t = t.join(head, stage.downsample(x, grid=t.side), t.side // 2)
        if stage.cls_token is not None:
            t = SparseTokens(torch.cat([stage.cls_token.expand(t.x.shape[0], -1, -1), t.x], 1), t.units, per_side,
                             t.side, t.prefix + 1)
        if stage.pos_embed is not None:
            t.x = t.x + _gather_tokens(stage.pos_embed.expand(t.x.shape[0], -1, -1), t)
        for block in stage.blocks:
            t = _pooling_block(block, t) if isinstance(block, PoolingBlock) else _block(block, t)
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
    """A ViT / Swin / HiViT block: MLP-only and unit-sized windows per unit, global attention over all tokens."""
    attn = block.attn
    if attn is None:
        return SparseTokens(block(t.x), t.units, t.per_side, t.side, t.prefix)
    if attn.window < attn.grid:  # a window that is exactly one unit (checked): attention inside each unit
        head, x = t.split()
        x = x + block.drop_path(attn._attend(block.norm1(x), attn._bias()))
        x = t.join(head, x, t.side).x
    else:
        bias = _gather_bias(attn._bias(), t) if attn.rel_pos is not None else None
        x = t.x + block.drop_path(attn._attend(block.norm1(t.x), bias))
    return SparseTokens(x + block.drop_path(block.mlp(block.norm2(x))), t.units, t.per_side, t.side, t.prefix)


def _gather_bias(bias: torch.Tensor, t: SparseTokens) -> torch.Tensor:
    """A dense (heads, prefix + N, prefix + N) attention bias at the visible tokens: (B, heads, n, n)."""
    index = torch.cat([torch.arange(t.prefix, device=bias.device).expand(t.x.shape[0], -1),
                       t.grid_index() + t.prefix], dim=1)  # B, n
    return bias[:, index[:, :, None], index[:, None, :]].permute(1, 0, 2, 3)


def _pooling_block(block: PoolingBlock, t: SparseTokens) -> SparseTokens:
    """An MViTv2 / Hiera block on unit-major tokens: pooling inside units, attention inside a unit (mask-unit
    attention and Hiera's transition block) or over all visible tokens (global stages)."""
    attn = block.attn
    local = attn.window < attn.side
    b, v, s = t.x.shape[0], t.units.shape[1], t.side
    xn = block.norm1(t.x)
    shortcut = block.shortcut_proj_attn(xn) if block.shortcut_proj_attn is not None else t.x
    if block.shortcut_pool is not None:
        shortcut = _pool_units(shortcut.reshape(b * v, s * s, 1, -1), block.shortcut_pool, s).reshape(b, -1,
                                                                                                      shortcut.shape[-1])
    out, side = _pooling_attention(attn, xn.view(b, v, s * s, -1), s, local)
    x = shortcut + block.drop_path(out)
    xn = block.norm2(x)
    shortcut = block.shortcut_proj_mlp(xn) if block.shortcut_proj_mlp is not None else x
    return SparseTokens(shortcut + block.drop_path(block.mlp(xn)), t.units, t.per_side, side, t.prefix)


def _pool_units(x: torch.Tensor, pool: nn.Module, side: int) -> torch.Tensor:
    """Pool per-unit maps (B', side^2, heads, d) on their side x side grid -> (B', side'^2, heads, d)."""
    bw, _, h, d = x.shape
    if isinstance(pool, Pool2d):
        return pool(x.view(bw, side, side, h, d).permute(0, 3, 1, 2, 4)).flatten(2, 3).transpose(1, 2)
    maps = x.view(bw, side, side, h * d).permute(0, 3, 1, 2)  # a plain nn.MaxPool2d (the shortcut)
    pooled = pool(maps)
    return pooled.flatten(2).transpose(1, 2).reshape(bw, -1, h, d)


def _pooling_attention(attn: PoolingAttention, x: torch.Tensor, side: int, local: bool) -> tuple[torch.Tensor, int]:
    """x: (B, V, side^2, C) -> ((B, V * side'^2, dim), side'): Q pooled inside units (kernel = stride),
    attention inside each unit or across all of a sample's units."""
    b, v, n, _ = x.shape
    q, k, v_ = attn.qkv(x).view(b * v, n, 3, attn.heads, -1).unbind(2)  # B*V, n, heads, d
    if attn.pool_q is not None:
        q = _pool_units(q, attn.pool_q, side)
    qs = int(round(q.shape[1] ** 0.5))
    q, k, v_ = (z.transpose(1, 2) for z in (q, k, v_))  # B*V, heads, tokens, d
    if not local:  # every visible token of a sample attends to every other
        q, k, v_ = (z.view(b, v, attn.heads, -1, z.shape[-1]).transpose(1, 2).flatten(2, 3) for z in (q, k, v_))
    out = F.scaled_dot_product_attention(q, k, v_)
    if attn.residual_pooling:
        out = out + q
    out = out.transpose(1, 2).reshape(b, v * qs * qs, attn.dim)  # tokens stay unit-major in both cases
    return attn.proj(out), qs
