"""Pooling of per-head maps inside attention (MViTv2, Hiera): max, average, or depthwise conv + LayerNorm, over
space on each token frame, or over time and space with a temporal kernel (MViTv2's video models: 3x3x3)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..arch.geometry import pool_padding


class Pool(nn.Module):
    """Pool (B', heads, T, h, w, d) over h, w (stride `stride`), and over T with `kernel_t` > 1 (stride 1, padded by
    kernel_t // 2, so T is kept): max / avg, or MViTv2's depthwise conv over d + LayerNorm(d)."""

    def __init__(self, op: str, kernel: int, stride: int, *, channels: int, eps: float, kernel_t: int = 1) -> None:
        super().__init__()
        pad = pool_padding(kernel, stride)
        self.kernel_t = kernel_t
        if kernel_t > 1:  # the same ops in 3D: (kernel_t, k, k), stride (1, s, s)
            k3, s3, p3 = (kernel_t, kernel, kernel), (1, stride, stride), (kernel_t // 2, pad, pad)
            conv, maxpool, avgpool = nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d
        else:
            k3, s3, p3 = kernel, stride, pad
            conv, maxpool, avgpool = nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d
        self.norm: Optional[nn.Module] = None
        if op == "conv":
            self.op: nn.Module = conv(channels, channels, k3, s3, p3, groups=channels, bias=False)
            self.norm = nn.LayerNorm(channels, eps=eps)
        elif op == "max":
            self.op = maxpool(k3, s3, p3)
        else:
            self.op = avgpool(k3, s3, p3, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, t, gy, gx, d = x.shape
        if self.kernel_t > 1:  # B'*heads, d, T, h, w
            x = self.op(x.reshape(b * h, t, gy, gx, d).permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
        else:  # B'*heads*T, d, h, w: each token frame alone
            x = self.op(x.reshape(b * h * t, gy, gx, d).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        if self.norm is not None:  # before the 6D view: fvcore counts norms of at most 5 dims
            x = self.norm(x)
        return x.reshape(b, h, t, x.shape[-3], x.shape[-2], d)
