"""Pooling attention (MViTv2, Hiera): Q/KV pooling, decomposed relative positions, mask-unit windows.

Tokens stay in row-major grid order (B, H*W, C). Mask-unit attention
partitions the grid into unit x unit windows, pools Q inside each window and
attends within it: Hiera's local attention, computed without Hiera's token
"unroll" (attention does not depend on token order inside a window).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import nn

from ..spec import pool_padding


class Pool2d(nn.Module):
    """Pool (B', heads, h, w, d) maps over h, w: max / avg, or MViTv2's depthwise conv + LayerNorm(d)."""

    def __init__(self, op: str, channels: int, kernel: int, stride: int, eps: float) -> None:
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


class DecomposedRelPos(nn.Module):
    """MViTv2's relative positions: q . rel_pos_h[dy] + q . rel_pos_w[dx] added to the attention logits."""

    def __init__(self, q_side: int, kv_side: int, head_dim: int) -> None:
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

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """q: (B, heads, Nq, d) -> bias (B, heads, Nq, Nk)."""
        b, h, _, d = q.shape
        rq = q.reshape(b, h, self.q_side, self.q_side, d)
        rel_h = torch.einsum("bnyxc,ykc->bnyxk", rq, self.rel_pos_h[self.index])
        rel_w = torch.einsum("bnyxc,xkc->bnyxk", rq, self.rel_pos_w[self.index])
        bias = rel_h[..., :, None] + rel_w[..., None, :]  # b, h, qy, qx, ky, kx
        return bias.reshape(b, h, self.q_side**2, self.kv_side**2)


class PoolingAttention(nn.Module):
    """Attention on a side x side grid with optional Q pooling (stride q_stride), KV pooling, decomposed
    relative positions, residual pooling, and locality in window x window units (mask units)."""

    def __init__(
        self,
        dim_in: int,
        dim: int,
        heads: int,
        side: int,
        window: int,
        q_pool: Optional[tuple[str, int, int]],  # (op, kernel, stride) or None
        kv_pool: Optional[tuple[str, int, int]],
        rel_pos: bool,
        residual_pooling: bool,
        qkv_bias: bool,
        eps: float,
    ) -> None:
        super().__init__()
        self.heads, self.side, self.window, self.dim = heads, side, window, dim
        head_dim = dim // heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim_in, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.pool_q = Pool2d(q_pool[0], head_dim, q_pool[1], q_pool[2], eps) if q_pool else None
        self.pool_k = Pool2d(kv_pool[0], head_dim, kv_pool[1], kv_pool[2], eps) if kv_pool else None
        self.pool_v = Pool2d(kv_pool[0], head_dim, kv_pool[1], kv_pool[2], eps) if kv_pool else None
        self.q_side = _pooled(window, q_pool)
        self.kv_side = _pooled(window, kv_pool)
        self.rel_pos = DecomposedRelPos(self.q_side, self.kv_side, head_dim) if rel_pos else None
        self.residual_pooling = residual_pooling
        self.probe = False
        self.probs: Optional[torch.Tensor] = None

    @property
    def out_side(self) -> int:
        return self.side // self.window * self.q_side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, side*side, dim_in) -> (B, out_side^2, dim)."""
        b, _, c = x.shape
        w, nw = self.window, self.side // self.window
        if nw > 1:  # B, s, s, C -> B*nW, w*w, C
            x = x.view(b, nw, w, nw, w, c).transpose(2, 3).reshape(b * nw * nw, w * w, c)
        bw = x.shape[0]
        q, k, v = self.qkv(x).view(bw, w, w, 3, self.heads, -1).permute(3, 0, 4, 1, 2, 5)  # 3, B', h, w, w, d
        q = self.pool_q(q) if self.pool_q is not None else q
        k = self.pool_k(k) if self.pool_k is not None else k
        v = self.pool_v(v) if self.pool_v is not None else v
        q, k, v = (t.flatten(2, 3) for t in (q, k, v))  # B', h, N, d
        bias = self.rel_pos(q) if self.rel_pos is not None else None
        if self.probe:
            logits = (q * self.scale) @ k.transpose(-2, -1)
            probs = (logits + bias if bias is not None else logits).softmax(dim=-1)
            self.probs = probs.detach()
            out = probs @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        if self.residual_pooling:
            out = out + q
        qs = self.q_side
        out = out.transpose(1, 2).reshape(bw, qs * qs, self.dim)
        if nw > 1:  # B*nW, qs*qs, C -> B, nw*qs, nw*qs, C
            out = out.view(b, nw, nw, qs, qs, self.dim).transpose(2, 3).reshape(b, (nw * qs) ** 2, self.dim)
        return self.proj(out)


def _pooled(side: int, pool: Optional[tuple[str, int, int]]) -> int:
    if pool is None:
        return side
    _, kernel, stride = pool
    return (side + 2 * pool_padding(kernel, stride) - kernel) // stride + 1


class PoolingBlock(nn.Module):
    """MViTv2 / Hiera block: the shortcut is projected (when widening) and max-pooled like Q.

    dim_in -> attention at dim_attn (widening here is Hiera's / MViTv2-B's expansion) -> MLP to dim_out
    (widening here is MViTv2-L's expansion, with a Linear shortcut on the normed input).
    """

    def __init__(
        self,
        dim_in: int,
        dim_attn: int,
        dim_out: int,
        mlp_ratio: float,
        attn: PoolingAttention,
        shortcut_pool: Optional[tuple[int, int]],  # (kernel, stride) of the max pool on the shortcut
        drop_path: float,
        eps: float,
    ) -> None:
        super().__init__()
        self.side = attn.side
        self.norm1 = nn.LayerNorm(dim_in, eps=eps)
        self.shortcut_proj_attn = nn.Linear(dim_in, dim_attn) if dim_in != dim_attn else None
        self.shortcut_pool = (nn.MaxPool2d(shortcut_pool[0], shortcut_pool[1], pool_padding(*shortcut_pool))
                              if shortcut_pool else None)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim_attn, eps=eps)
        self.mlp = Mlp(dim_attn, int(dim_attn * mlp_ratio), out_features=dim_out)
        self.shortcut_proj_mlp = nn.Linear(dim_attn, dim_out) if dim_attn != dim_out else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = self.norm1(x)
        shortcut = self.shortcut_proj_attn(xn) if self.shortcut_proj_attn is not None else x
        if self.shortcut_pool is not None:
            b, _, c = shortcut.shape
            pooled = self.shortcut_pool(shortcut.transpose(1, 2).reshape(b, c, self.side, self.side))
            shortcut = pooled.flatten(2).transpose(1, 2)
        x = shortcut + self.drop_path(self.attn(xn))
        xn = self.norm2(x)
        shortcut = self.shortcut_proj_mlp(xn) if self.shortcut_proj_mlp is not None else x
        return shortcut + self.drop_path(self.mlp(xn))
