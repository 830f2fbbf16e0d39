"""ArchSpec -> nn.Module: one builder for every architecture in the spec space."""

from __future__ import annotations

from typing import Optional

import torch
from timm.layers import trunc_normal_
from torch import nn

from .nn.attention import Attention
from .nn.blocks import Block
from .nn.embed import PatchEmbed, PatchMerge, TokenPool
from .nn.pooling import PoolingAttention, PoolingBlock
from .spec import ArchSpec, Stage, check, effective_window


class StageModule(nn.Module):
    """Downsample (patch merge / token pool), position embedding (+ class token), then the blocks."""

    def __init__(self, downsample: nn.Module, blocks: list[nn.Module], pos_tokens: int, dim: int, class_token: bool):
        super().__init__()
        self.downsample = downsample
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_tokens, dim)) if pos_tokens else None
        self.blocks = nn.Sequential(*blocks)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        return self.blocks(x)


class Net(nn.Module):
    """Stem -> stages -> norm -> pool (class token or average) -> linear classifier."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        check(spec)
        self.spec = spec
        eps = spec.norm_eps
        self.patch_embed = PatchEmbed(spec.patch_size, spec.in_chans, spec.stages[0].dim, spec.stem_norm, eps,
                                      spec.stem_kernel)
        total = sum(st.depth for st in spec.stages)
        rates = iter(torch.linspace(0, spec.drop_path, total).tolist() if total else [])
        geometry = spec.geometry()
        side_in: Optional[int] = spec.img_size // spec.patch_size
        stages, prev_dim = [], spec.stages[0].dim
        for i, st in enumerate(spec.stages):
            tokens, side = geometry[i]
            if st.downsample == "patch_merge":
                down: nn.Module = PatchMerge(prev_dim, st.dim, side * 2, eps)
            elif st.downsample == "token_pool":
                down = TokenPool(st.pool, st.dim, st.q_kernel)
            else:
                down = nn.Identity()
            cls_here = spec.class_token and i == 0
            if st.multiscale:
                blocks = _pooling_blocks(spec, i, prev_dim, side_in, rates)
            else:
                blocks = [_block(spec, st, side, next(rates), prefix=int(spec.class_token), index=j)
                          for j in range(st.depth)]
            pos_tokens = tokens + int(cls_here) if st.pos_embed else 0
            stages.append(StageModule(down, blocks, pos_tokens, st.dim, cls_here))
            prev_dim = _stage_out_dim(spec, i)
            side_in = side
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(prev_dim, eps=eps)
        self.head = nn.Linear(prev_dim, spec.num_classes) if spec.num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> final tokens (B, N, C), normalised unless the norm comes after pooling."""
        x = self.stages(self.patch_embed(x))
        return self.norm(x) if self.spec.head_norm == "tokens" else x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, 0] if self.spec.pool == "token" else x.mean(dim=1)
        if self.spec.head_norm == "pooled":
            x = self.norm(x)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _block(spec: ArchSpec, st: Stage, grid: Optional[int], drop_path: float, prefix: int, index: int) -> Block:
    """Block `index` of a ViT/Swin/HiViT/HVT stage; odd blocks of a shifted-window stage shift by half a window."""
    if st.block == "mlp":
        return Block(st.dim, st.mlp_ratio, None, drop_path, spec.norm_eps)
    if grid is None:  # after a 1D token pool: global attention over the sequence
        attn = Attention(st.dim, st.heads, 0, 0, 0, False, spec.qkv_bias, prefix)
    else:
        window = grid if st.attention == "global" else effective_window(grid, st.window)
        shift = window // 2 if (st.shift and window < grid and index % 2 == 1) else 0
        attn = Attention(st.dim, st.heads, grid, window, shift, st.rel_pos == "bias", spec.qkv_bias, prefix)
    return Block(st.dim, st.mlp_ratio, attn, drop_path, spec.norm_eps)


def _stage_out_dim(spec: ArchSpec, i: int) -> int:
    """Width leaving stage i: the next stage's when MViTv2-L-style expansion widens in this stage's last MLP."""
    st = spec.stages[i]
    nxt = spec.stages[i + 1] if i + 1 < len(spec.stages) else None
    if nxt is not None and nxt.downsample == "q_pool" and spec.channel_expand == "mlp" and st.multiscale and st.depth:
        return nxt.dim
    return st.dim


def _pooling_blocks(spec: ArchSpec, i: int, prev_dim: int, side_in: int, rates) -> list[PoolingBlock]:
    """MViTv2 / Hiera blocks of stage i. The first block of a q_pool stage works at the previous
    resolution: it pools Q (and the shortcut) by 2, and, as in Hiera, keeps the previous stage's
    mask-unit locality for that one block (attention goes global only after pooling)."""
    st = spec.stages[i]
    prev = spec.stages[i - 1] if i else None
    units = spec.mask_unit_windows()
    out_dim = _stage_out_dim(spec, i)
    blocks = []
    side = side_in
    for j in range(st.depth):
        first_pool = j == 0 and st.downsample == "q_pool"
        q_stride = 2 if first_pool else 1
        mask_unit = st.attention == "mask_unit" or (first_pool and prev is not None and prev.attention == "mask_unit")
        window = (units[i - 1] if first_pool else units[i]) if mask_unit else side
        dim_in = prev_dim if j == 0 else st.dim
        dim_attn = st.dim  # widening from dim_in happens here unless the previous stage's last MLP did it
        dim_out = out_dim if j == st.depth - 1 else dim_attn
        q_pool = (st.pool, st.q_kernel, q_stride) if (q_stride > 1 or st.pool_stride1) else None
        kv_pool = (st.pool, st.kv_kernel, st.kv_stride) if st.pools_kv else None
        attn = PoolingAttention(dim_in, dim_attn, st.heads, side, window, q_pool, kv_pool, st.rel_pos == "decomposed",
                                st.residual_pooling, spec.qkv_bias, spec.norm_eps)
        shortcut_pool = (st.q_kernel, 2) if first_pool else None
        blocks.append(PoolingBlock(dim_in, dim_attn, dim_out, st.mlp_ratio, attn, shortcut_pool, next(rates),
                                   spec.norm_eps))
        side = attn.out_side
    return blocks


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def build(spec: ArchSpec) -> Net:
    """Build the model a spec describes."""
    return Net(spec)
