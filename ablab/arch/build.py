"""ArchSpec -> nn.Module: one builder for every architecture in the spec space, assembled from the spec's kinds."""

from __future__ import annotations

import functools
import math
from typing import Iterator, Optional

import torch
from timm.layers import trunc_normal_
from torch import nn

from ..nn.blocks import Block
from ..nn.embed import PatchEmbed
from .kinds import DOWNSAMPLE, HEADS, StageContext
from .spec import ArchSpec, check


class StageModule(nn.Module):
    """Downsample (patch merge / token pool), position embedding (+ class token), then the blocks.

    The embedding is one table over every token (`pos_tokens`), or, separated (`pos_frames` > 0), a spatial
    table of `pos_tokens` plus a temporal one of `pos_frames` (Hiera's video models: token (t, y, x) gets
    spatial[y, x] + temporal[t])."""

    def __init__(self, *, downsample: nn.Module, blocks: list[nn.Module], pos_tokens: int, dim: int,
                 class_token: bool, pos_frames: int = 0) -> None:
        super().__init__()
        self.downsample = downsample
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_tokens, dim)) if pos_tokens and not pos_frames else None
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, pos_tokens, dim)) if pos_frames else None
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, pos_frames, dim)) if pos_frames else None
        self.blocks = nn.Sequential(*blocks)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        for table in (self.pos_embed, self.pos_embed_spatial, self.pos_embed_temporal):
            if table is not None:
                trunc_normal_(table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        table = self.position_table()
        return self.blocks(x if table is None else x + table)

    def position_table(self) -> Optional[torch.Tensor]:
        """The absolute embedding of every token, (1, prefix + T * N, C) frame-major, or None without one."""
        if self.pos_embed_spatial is not None:
            n = self.pos_embed_spatial.shape[1]
            return (self.pos_embed_spatial.repeat(1, self.pos_embed_temporal.shape[1], 1)
                    + self.pos_embed_temporal.repeat_interleave(n, dim=1))
        return self.pos_embed


class Net(nn.Module):
    """Stem -> stages -> norm -> pool (head kind: class token or average) -> linear classifier."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        check(spec)
        self.spec = spec
        self.patch_embed = PatchEmbed(patch=spec.patch_size, in_chans=spec.in_chans, dim=spec.stages[0].dim,
                                      norm=spec.stem_norm, eps=spec.norm_eps, kernel=spec.stem_kernel,
                                      clip=spec.frames > 1, patch_t=spec.patch_t, kernel_t=spec.stem_kernel_t)
        total = sum(st.depth for st in spec.stages)
        rates = iter(torch.linspace(0, spec.drop_path, total, device="cpu").tolist() if total else [])
        stages, width = [], spec.stages[0].dim  # width: of the tokens leaving the previous stage
        for ctx in spec.contexts():
            st = ctx.stage
            down = ctx.downsample.build(ctx, width)
            blocks = list(_blocks(ctx, ctx.downsample.width(width, st), rates))
            cls_here = spec.class_token and ctx.index == 0
            pos_frames = spec.t_tokens if st.pos_embed and spec.sep_pos_embed else 0
            pos_tokens = (ctx.tokens // max(pos_frames, 1) + int(cls_here)) if st.pos_embed else 0
            stages.append(StageModule(downsample=down, blocks=blocks, pos_tokens=pos_tokens, dim=st.dim,
                                      class_token=cls_here, pos_frames=pos_frames))
            width = stage_out_dim(ctx)
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(width, eps=spec.norm_eps)
        self.head = nn.Linear(width, spec.num_classes) if spec.num_classes > 0 else nn.Identity()
        self.apply(functools.partial(_init_weights, std=spec.init_std))
        if spec.depth_scaled_init and total:
            _scale_residual_outputs(self, 1 / math.sqrt(2 * total))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) or a clip (B, 3, T, H, W) -> final tokens (B, N, C), normalised unless the norm comes after
        pooling."""
        x = self.stages(self.patch_embed(x))
        return self.norm(x) if self.spec.head_norm == "tokens" else x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = HEADS[self.spec.pool].pool(x)
        if self.spec.head_norm == "pooled":
            x = self.norm(x)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _blocks(ctx: StageContext, dim_in: int, rates: Iterator[float]) -> Iterator[nn.Module]:
    """The stage's blocks, built by its block kind; the last one may widen for the next stage (MViTv2-L)."""
    st, out_dim = ctx.stage, stage_out_dim(ctx)
    for j in range(st.depth):
        yield ctx.block.build(ctx, j, dim_in if j == 0 else st.dim, out_dim if j == st.depth - 1 else st.dim,
                              next(rates))


def stage_out_dim(ctx: StageContext) -> int:
    """Width leaving a stage: the next stage's when MViTv2-L-style expansion widens in this stage's last MLP."""
    spec, st = ctx.spec, ctx.stage
    nxt = spec.stages[ctx.index + 1] if ctx.index + 1 < len(spec.stages) else None
    if (nxt is not None and DOWNSAMPLE[nxt.downsample].pools_in_block and spec.channel_expand == "mlp"
            and st.multiscale and st.depth):
        return nxt.dim
    return st.dim


def _init_weights(m: nn.Module, std: float) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=std)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


@torch.no_grad()
def _scale_residual_outputs(model: nn.Module, factor: float) -> None:
    """Scale the last Linear of every block's residual branches (attention proj, MLP fc2) by `factor`: GPT-2's
    init, which keeps the residual stream's growth over a deep stack at initialisation that of a shallow one."""
    for block in model.modules():
        if isinstance(block, Block):
            for layer in ([block.attn.proj] if block.attn is not None else []) + [block.mlp.fc2]:
                layer.weight.mul_(factor)


def build(spec: ArchSpec) -> Net:
    """Build the model a spec describes."""
    return Net(spec)
