"""The transformer block of every architecture here: pre-norm attention + MLP, or MLP only (HiViT's low stages)."""

from __future__ import annotations

from typing import Optional

import torch
from timm.layers import DropPath, Mlp
from torch import nn

from ..arch.geometry import pool_padding
from .attention import Attention
from .embed import frames_of
from .pooling import per_unit


class Block(nn.Module):
    """x + attn(norm1(x)), then x + mlp(norm2(x)); `attn=None` makes an MLP-only block.

    Where a stage changes resolution or width inside its first block (MViTv2, Hiera), the shortcut follows:
    projected when the attention widens (dim_in -> dim), max-pooled like Q (`shortcut_pool` = (kernel, stride),
    on each `unit` x `unit` square alone with separate-and-pad), and projected again when the MLP widens
    (dim -> dim_out, MViTv2-L's expansion).
    """

    def __init__(
        self,
        *,
        dim_in: int,
        dim: int,
        dim_out: int,
        mlp_ratio: float,
        attn: Optional[Attention],
        shortcut_pool: Optional[tuple[int, int]] = None,
        unit: int = 0,
        drop_path: float = 0.0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.side, self.unit = (attn.side if attn is not None else None), unit
        self.norm1 = nn.LayerNorm(dim_in, eps=eps) if attn is not None else None
        self.shortcut_proj_attn = nn.Linear(dim_in, dim) if attn is not None and dim_in != dim else None
        self.shortcut_pool = nn.MaxPool2d(*shortcut_pool, pool_padding(*shortcut_pool)) if shortcut_pool else None
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), out_features=dim_out)
        self.shortcut_proj_mlp = nn.Linear(dim, dim_out) if dim != dim_out else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, dim_in) -> (B, N', dim_out); N' = N unless the attention pools Q."""
        if self.attn is not None:
            xn = self.norm1(x)
            shortcut = self.shortcut_proj_attn(xn) if self.shortcut_proj_attn is not None else x
            if self.shortcut_pool is not None:  # on every token frame
                b, _, c = shortcut.shape
                t = frames_of(shortcut, self.side)
                maps = shortcut.reshape(b * t, self.side, self.side, c).permute(0, 3, 1, 2)
                shortcut = per_unit(self.shortcut_pool, maps, self.unit).flatten(2).transpose(1, 2).reshape(b, -1, c)
            x = shortcut + self.drop_path(self.attn(xn))
        xn = self.norm2(x)
        shortcut = self.shortcut_proj_mlp(xn) if self.shortcut_proj_mlp is not None else x
        return shortcut + self.drop_path(self.mlp(xn))
