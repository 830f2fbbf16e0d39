"""2D pooling of per-head maps inside attention (MViTv2, Hiera): max, average, or depthwise conv + LayerNorm."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..arch.geometry import pool_padding


class Pool2d(nn.Module):
    """Pool (B', maps, h, w, d) over h, w: max / avg, or MViTv2's depthwise conv over d + LayerNorm(d)."""

    def __init__(self, op: str, kernel: int, stride: int, *, channels: int, eps: float) -> None:
        super().__init__()
        pad = pool_padding(kernel, stride)
        self.norm: Optional[nn.Module] = None
        if op == "conv":
            self.op: nn.Module = nn.Conv2d(channels, channels, kernel, stride, pad, groups=channels, bias=False)
            self.norm = nn.LayerNorm(channels, eps=eps)
        elif op == "max":
            self.op = nn.MaxPool2d(kernel, stride, pad)
        else:
            self.op = nn.AvgPool2d(kernel, stride, pad, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, gy, gx, d = x.shape
        x = self.op(x.reshape(b * h, gy, gx, d).permute(0, 3, 1, 2))
        x = x.permute(0, 2, 3, 1).reshape(b, h, x.shape[-2], x.shape[-1], d)
        return self.norm(x) if self.norm is not None else x
