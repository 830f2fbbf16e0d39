"""Position encodings: Swin's relative position bias table, MViTv2's decomposed relative positions, and the
shifted-window mask."""

from __future__ import annotations

from typing import Optional

import torch
from timm.layers import trunc_normal_
from torch import nn

Coords = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # token frame, row, column of each token


class RelPosBias(nn.Module):
    """A learned (2W-1)^2 x heads table, looked up into a (heads, W*W, W*W) attention bias.

    Used for window attention (W = window) and for global attention on a WxW grid alike; `prefix` extra
    tokens (a class token) get zero bias. The bias does not depend on the queries.
    """

    def __init__(self, *, window: int, heads: int, prefix: int = 0) -> None:
        super().__init__()
        self.window, self.heads, self.prefix = window, heads, prefix
        self.table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        trunc_normal_(self.table, std=0.02)
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        coords = torch.stack([ys.flatten(), xs.flatten()], dim=1)  # N, 2
        self.register_buffer("index", relative_index(coords, coords, window), persistent=False)

    def forward(self, q: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The bias (heads, prefix + N, prefix + N); `q` is not needed."""
        n = self.window * self.window
        # contiguous: SDPA's fused CUDA kernels need a unit last-dim stride, else it falls back to fp32 math
        bias = self.table[self.index.view(-1)].view(n, n, self.heads).permute(2, 0, 1).contiguous()
        if self.prefix:
            bias = nn.functional.pad(bias, (self.prefix, 0, self.prefix, 0))
        return bias


class DecomposedRelPos(nn.Module):
    """MViTv2's relative positions: q . rel_pos_h[dy] + q . rel_pos_w[dx] added to the attention logits, between
    a q_side^2 query map and a kv_side^2 key map (either may be pooled); over a clip's `frames` token frames
    (pooled at stride 1 in time) also q . rel_pos_t[dt], as MViTv2's video models."""

    def __init__(self, *, q_side: int, kv_side: int, head_dim: int, frames: int = 1) -> None:
        super().__init__()
        size = 2 * max(q_side, kv_side) - 1
        self.rel_pos_h = nn.Parameter(torch.zeros(size, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(size, head_dim))
        trunc_normal_(self.rel_pos_h, std=0.02)
        trunc_normal_(self.rel_pos_w, std=0.02)
        q_ratio, k_ratio = max(kv_side / q_side, 1.0), max(q_side / kv_side, 1.0)
        dist = (torch.arange(q_side)[:, None] * q_ratio - torch.arange(kv_side)[None, :] * k_ratio
                + (kv_side - 1) * k_ratio)
        self.register_buffer("index", dist.long(), persistent=False)  # q_side, kv_side
        self.q_side, self.kv_side = q_side, kv_side
        self.frames = frames
        self.rel_pos_t = nn.Parameter(torch.zeros(2 * frames - 1, head_dim)) if frames > 1 else None
        if self.rel_pos_t is not None:
            trunc_normal_(self.rel_pos_t, std=0.02)
            steps = torch.arange(frames)
            self.register_buffer("index_t", (steps[:, None] - steps[None, :] + frames - 1), persistent=False)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """q: (B, heads, Nq, d) -> bias (B, heads, Nq, Nk), tokens frame-major."""
        b, h, _, d = q.shape
        t = self.frames
        rq = q.reshape(b, h, t, self.q_side, self.q_side, d)
        rel_h = torch.einsum("bntyxc,ykc->bntyxk", rq, self.rel_pos_h[self.index])
        rel_w = torch.einsum("bntyxc,xkc->bntyxk", rq, self.rel_pos_w[self.index])
        bias = rel_h[..., :, None] + rel_w[..., None, :]  # b, h, qt, qy, qx, ky, kx
        if self.rel_pos_t is None:
            return bias.reshape(b, h, self.q_side**2, self.kv_side**2)
        rel_t = torch.einsum("bntyxc,tkc->bntyxk", rq, self.rel_pos_t[self.index_t])  # b, h, qt, qy, qx, kt
        bias = rel_t[..., :, None, None] + bias[..., None, :, :]  # b, h, qt, qy, qx, kt, ky, kx
        return bias.reshape(b, h, t * self.q_side**2, t * self.kv_side**2)

    def at(self, q: torch.Tensor, q_at: Coords, k_at: Coords) -> torch.Tensor:
        """The same bias between queries and keys at given grid positions (sparse MAE's visible tokens): q (B, heads,
        n, d), q_at and k_at (token frame, row, column) each (B, n) and (B, m) -> (B, heads, n, m)."""
        tables = [(self.rel_pos_h[self.index], 1), (self.rel_pos_w[self.index], 2)]
        if self.rel_pos_t is not None:
            tables.append((self.rel_pos_t[self.index_t], 0))
        bias = 0
        for table, axis in tables:  # table (q positions, k positions, d) on this axis
            rel = torch.einsum("bhnd,bnkd->bhnk", q, table[q_at[axis]])  # b, h, n, k positions
            bias = bias + rel.gather(-1, k_at[axis][:, None, None, :].expand(*rel.shape[:3], -1))
        return bias


def relative_index(q: torch.Tensor, k: torch.Tensor, window: int) -> torch.Tensor:
    """Row of the (2W-1)^2 bias table for every pair of in-window (y, x) positions: q (..., N, 2), k (..., M, 2)
    -> (..., N, M). Shared by dense windows and GreenMIM's groups, which look biases up from stored coordinates."""
    rel = q[..., :, None, :] - k[..., None, :, :] + (window - 1)  # ..., N, M, 2 in [0, 2W-2]
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shifted_window_mask(grid: int, window: int, shift: int) -> torch.Tensor:
    """Swin's additive mask (num_windows, W*W, W*W): -inf between tokens that the cyclic shift made neighbours."""
    region = torch.zeros(grid, grid)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for ys in cuts:
        for xs in cuts:
            region[ys, xs] = label
            label += 1
    nw = grid // window
    windows = region.view(nw, window, nw, window).permute(0, 2, 1, 3).reshape(nw * nw, window * window)
    same = windows[:, :, None] == windows[:, None, :]
    return torch.zeros(same.shape).masked_fill(~same, float("-inf"))
