"""Patch embedding (the stem), 2x2 patch merging between stages and HVT's 1D and 2D token pooling."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..arch.geometry import pool_padding


class PatchEmbed(nn.Module):
    """Image or clip -> tokens: conv with stride `patch` (kernel `patch`, or an odd `kernel` padded by kernel // 2
    for an overlapping stem), optional LayerNorm. (B, 3, H, W) -> (B, H/p * W/p, C). A clip (`clip`) gets a 3D conv
    of temporal stride `patch_t` and kernel `kernel_t` (same rule): (B, 3, T, H, W) -> (B, T' * H/p * W/p, C),
    tokens frame-major."""

    def __init__(self, *, patch: int, in_chans: int, dim: int, norm: bool, eps: float = 1e-5, kernel: int = 0,
                 clip: bool = False, patch_t: int = 1, kernel_t: int = 0) -> None:
        super().__init__()
        k = kernel or patch
        pad = k // 2 if kernel else 0
        if clip:
            kt = kernel_t or patch_t
            self.proj: nn.Module = nn.Conv3d(in_chans, dim, kernel_size=(kt, k, k), stride=(patch_t, patch, patch),
                                             padding=(kt // 2 if kernel_t else 0, pad, pad))
        else:
            self.proj = nn.Conv2d(in_chans, dim, kernel_size=k, stride=patch, padding=pad)
        self.norm = nn.LayerNorm(dim, eps=eps) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # contiguous tokens: a transposed view would carry its strides into every residual add after it (elementwise
        # ops keep their input's layout), which runs those adds 25% slower on a GPU
        return self.norm(self.proj(x).flatten(2).transpose(1, 2).contiguous())


def frames_of(x: torch.Tensor, side: int) -> int:
    """Token frames in x (B, T * side^2, C): 2D operators run on each of them."""
    return x.shape[1] // (side * side)


class PatchMerge(nn.Module):
    """Swin/HiViT patch merging: concat each 2x2 neighbourhood -> LayerNorm(4C) -> Linear(4C -> out, no bias)."""

    def __init__(self, *, dim: int, out_dim: int, grid: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.grid = grid  # input side length
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor, grid: Optional[int] = None) -> torch.Tensor:
        """x: (B, g*g, C) on a g x g grid (default: the model's; sparse MAE passes a mask unit's side)."""
        b, _, c = x.shape
        g = grid or self.grid
        t, h = frames_of(x, g), g // 2
        # B, T*g*g, C -> B*T, h, 2(y), h, 2(x), C -> B*T, h, h, 2(x), 2(y), C -> B, T*h*h, 4C
        x = x.view(b * t, h, 2, h, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, t * h * h, 4 * c)
        return self.reduction(self.norm(x))


class TokenPool(nn.Module):
    """HVT's 1D pooling over the token sequence: max / avg (kernel k, stride 2, no padding), or a dense
    Conv1d(C -> C, k, stride 2) for Table 3's conv variant. (B, N, C) -> (B, (N - k) // 2 + 1, C)."""

    def __init__(self, *, op: str, dim: int, kernel: int) -> None:
        super().__init__()
        if op == "conv":
            self.op: nn.Module = nn.Conv1d(dim, dim, kernel, stride=2)
        elif op == "max":
            self.op = nn.MaxPool1d(kernel, stride=2)
        else:
            self.op = nn.AvgPool1d(kernel, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x.transpose(1, 2)).transpose(1, 2).contiguous()  # contiguous: see PatchEmbed


class GridPool(nn.Module):
    """HVT's 2D pooling (Table 9): max / avg over the `grid` x `grid` token map, kernel k, stride 2, padded by k // 2
    unless k = 2 (padding left out of averages). (B, g*g, C) -> (B, g'*g', C)."""

    def __init__(self, *, op: str, kernel: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        pad = pool_padding(kernel, 2)
        if op == "max":
            self.op: nn.Module = nn.MaxPool2d(kernel, stride=2, padding=pad)
        else:
            self.op = nn.AvgPool2d(kernel, stride=2, padding=pad, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        t = frames_of(x, self.grid)
        x = x.view(b * t, self.grid, self.grid, c).permute(0, 3, 1, 2)
        x = self.op(x)  # B*T, C, g', g'
        return x.flatten(2).transpose(1, 2).reshape(b, -1, c)
