"""Pooling of per-head maps inside attention (MViTv2, Hiera): max, average, or depthwise conv + LayerNorm, over
space on each token frame, or over time and space with a temporal kernel (MViTv2's video models: 3x3x3); and,
with Hiera's separate-and-pad trick (Fig. 4d), on each mask unit alone."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ..arch.geometry import pool_padding


class Pool(nn.Module):
    """Pool (B', heads, T, h, w, d) over h, w (stride `stride`), and over T with `kernel_t` > 1 (stride 1, padded by
    kernel_t // 2, so T is kept): max / avg, or MViTv2's depthwise conv over d + LayerNorm(d). With `unit` > 0
    every unit x unit square of one token frame is pooled alone, zero-padded at its border (separate-and-pad)."""

    def __init__(self, op: str, kernel: int, stride: int, *, channels: int, eps: float, kernel_t: int = 1,
                 unit: int = 0) -> None:
        super().__init__()
        pad = pool_padding(kernel, stride)
        self.kernel_t, self.unit = kernel_t, unit
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
        if self.kernel_t > 1 and not self.unit:  # B'*heads, d, T, h, w
            x = self.op(x.reshape(b * h, t, gy, gx, d).permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1)
        elif self.kernel_t > 1:  # a unit is one token frame deep: B'*heads*T*units, d, 1, u, u
            maps = x.reshape(b * h * t, gy, gx, d).permute(0, 3, 1, 2)
            x = per_unit(lambda m: self.op(m[:, :, None])[:, :, 0], maps, self.unit).permute(0, 2, 3, 1)
        else:  # B'*heads*T, d, h, w: each token frame alone
            x = per_unit(self.op, x.reshape(b * h * t, gy, gx, d).permute(0, 3, 1, 2), self.unit).permute(0, 2, 3, 1)
        if self.norm is not None:  # before the 6D view: fvcore counts norms of at most 5 dims
            x = self.norm(x)
        return x.reshape(b, h, t, x.shape[-3], x.shape[-2], d)


def per_unit(op: Callable[[torch.Tensor], torch.Tensor], maps: torch.Tensor, unit: int) -> torch.Tensor:
    """op on every unit x unit square of maps (N, C, H, W) alone (unit 0 or the whole map: on the map), the results
    put back in place: (N, C, H', W'). The squares move to the batch, so op's padding pads each of them; they stay
    channels-last in memory, as the maps come, where oneDNN's depthwise convolutions run 2x faster."""
    n, c, gy, gx = maps.shape
    if not unit or (unit == gy and unit == gx):
        return op(maps)
    ny, nx = gy // unit, gx // unit  # N, ny, u, nx, u, C -> N*ny*nx, u, u, C, viewed as N*ny*nx, C, u, u
    squares = maps.permute(0, 2, 3, 1).reshape(n, ny, unit, nx, unit, c).transpose(2, 3)
    out = op(squares.reshape(n * ny * nx, unit, unit, c).permute(0, 3, 1, 2))
    uy, ux = out.shape[-2:]  # N*ny*nx, u', u', C -> N, ny*u', nx*u', C, viewed as N, C, ny*u', nx*u'
    out = out.permute(0, 2, 3, 1).reshape(n, ny, nx, uy, ux, c).transpose(2, 3)
    return out.reshape(n, ny * uy, nx * ux, c).permute(0, 3, 1, 2)
