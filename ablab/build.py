"""ArchSpec -> nn.Module: one builder for every architecture in the spec space."""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import nn

from .nn.attention import Attention
from .nn.blocks import Block
from .nn.embed import PatchEmbed, PatchMerge
from .spec import ArchSpec, Stage, check, effective_window


class StageModule(nn.Module):
    """Optional downsample, optional position embedding (+ class token), then the blocks."""

    def __init__(self, downsample: nn.Module, blocks: list[Block], pos_tokens: int, dim: int, class_token: bool):
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
        self.patch_embed = PatchEmbed(spec.patch_size, spec.in_chans, spec.stages[0].dim, spec.stem_norm, spec.norm_eps)
        total = sum(st.depth for st in spec.stages)
        rates = torch.linspace(0, spec.drop_path, total).tolist() if total else []
        grids = spec.grids()
        stages, prev_dim, first = [], spec.stages[0].dim, 0
        for i, (st, grid) in enumerate(zip(spec.stages, grids)):
            down = PatchMerge(prev_dim, st.dim, grid * 2, spec.norm_eps) if st.downsample == "patch_merge" else nn.Identity()
            pos_here = spec.pos_embed == "learned" and spec.pos_embed_stage == i
            cls_here = spec.class_token and i == 0
            blocks = [
                _block(spec, st, grid, j, rates[first + j], prefix=int(spec.class_token)) for j in range(st.depth)
            ]
            stages.append(StageModule(down, blocks, (grid * grid + int(cls_here)) if pos_here else 0, st.dim, cls_here))
            prev_dim, first = st.dim, first + st.depth
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(prev_dim, eps=spec.norm_eps)
        self.head = nn.Linear(prev_dim, spec.num_classes) if spec.num_classes > 0 else nn.Identity()
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> final tokens (B, N, C), normalised."""
        return self.norm(self.stages(self.patch_embed(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, 0] if self.spec.pool == "token" else x.mean(dim=1)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _block(spec: ArchSpec, st: Stage, grid: int, index: int, drop_path: float, prefix: int) -> Block:
    """Block `index` of stage `st`; odd blocks of a shifted-window stage shift by half a window."""
    if st.block == "mlp":
        return Block(st.dim, st.mlp_ratio, None, drop_path, spec.norm_eps)
    window = grid if st.attention == "global" else effective_window(grid, st.window)
    shift = window // 2 if (st.shift and window < grid and index % 2 == 1) else 0
    attn = Attention(st.dim, st.heads, grid, window, shift, st.rel_pos == "bias", spec.qkv_bias, prefix)
    return Block(st.dim, st.mlp_ratio, attn, drop_path, spec.norm_eps)


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
