"""Transformer block (pre-norm attention + MLP) and the MLP-only block of HiViT's low stages."""

from __future__ import annotations

from typing import Optional

import torch
from timm.layers import DropPath, Mlp
from torch import nn

from .attention import Attention


class Block(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x)); with `attn=None` an MLP-only block."""

    def __init__(
        self, dim: int, mlp_ratio: float, attn: Optional[Attention], drop_path: float = 0.0, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps) if attn is not None else None
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attn is not None:
            x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))
