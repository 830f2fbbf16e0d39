"""Multi-head self-attention over a square token grid: global, window or shifted window.

The fast path is `F.scaled_dot_product_attention`; setting `probe = True`
switches to explicit softmax and keeps the attention probabilities in
`self.probs` (batch, heads, query, key) for the attention-variance study.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .position import RelPosBias, shifted_window_mask


class Attention(nn.Module):
    """Self-attention of `heads` heads on a `grid`x`grid` map (+ `prefix` class tokens).

    window = grid means global attention; smaller windows partition the map
    Swin-style, and `shift` > 0 rolls it by that many tokens first.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        grid: int,
        window: int,
        shift: int = 0,
        rel_pos: bool = False,
        qkv_bias: bool = True,
        prefix: int = 0,
    ) -> None:
        super().__init__()
        assert prefix == 0 or window == grid, "class tokens need global attention"
        self.heads, self.grid, self.window, self.shift, self.prefix = heads, grid, window, shift, prefix
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos = RelPosBias(window, heads, prefix) if rel_pos else None
        mask = shifted_window_mask(grid, window, shift)[:, None] if shift else None  # nW, 1, N, N
        self.register_buffer("mask", mask, persistent=False)
        self.probe = False
        self.probs: Optional[torch.Tensor] = None

    def _bias(self) -> Optional[torch.Tensor]:
        """Additive attention bias: relative position bias plus the shifted-window mask."""
        bias = self.rel_pos() if self.rel_pos is not None else None  # heads, N, N
        if self.mask is not None:
            bias = self.mask if bias is None else self.mask + bias  # nW, heads|1, N, N
        return bias

    def _attend(self, x: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        """x: (B', N, C) -> (B', N, C), B' = batch x windows; bias broadcasts to (B', heads, N, N)."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if bias is not None:
            # CPU SDPA kernels are fastest with a dense mask of the full batch shape (measured: ~2.5x over a
            # broadcast mask on Swin-B windows), so there the bias is materialised per call. CUDA kernels
            # broadcast a (1, heads, N, N) mask themselves: materialising it cost ViT+RPE 2.5x on an H100.
            nw = bias.shape[0] if bias.dim() == 4 else 1
            if nw > 1 or x.device.type == "cpu":
                bias = bias.expand(b // nw, nw, self.heads, n, n).reshape(b, self.heads, n, n)
            else:
                bias = bias.reshape(1, self.heads, n, n)
            bias = bias.to(q.dtype)
        if self.probe:
            logits = (q * self.scale) @ k.transpose(-2, -1)
            if bias is not None:
                logits = logits + bias
            probs = logits.softmax(dim=-1)
            self.probs = probs.detach()
            out = probs @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, prefix + grid*grid, C)."""
        if self.window == self.grid:
            return self._attend(x, self._bias())
        b, n, c = x.shape
        g, w, nw = self.grid, self.window, self.grid // self.window
        x = x.view(b, g, g, c)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        # B, g, g, C -> B*nW, w*w, C
        x = x.view(b, nw, w, nw, w, c).transpose(2, 3).reshape(b * nw * nw, w * w, c)
        x = self._attend(x, self._bias())
        x = x.view(b, nw, nw, w, w, c).transpose(2, 3).reshape(b, g, g, c)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        return x.reshape(b, n, c)
