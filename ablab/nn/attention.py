"""Multi-head self-attention for every attention kind: global, (shifted) windows, mask units, MViTv2 pooling.

Tokens stay in row-major grid order (B, prefix + side^2, C). Windows are window x window squares of the grid
(Swin's windows, Hiera's mask units: attention does not depend on token order inside a window, so no unroll is
needed). The fast path is `F.scaled_dot_product_attention` inside an `Attend` module; analyses take the
attention probabilities with a forward hook on it (`attention_probs`), never by a flag in the layer.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..arch.geometry import pooled_side
from .embed import frames_of
from .pooling import Pool

PoolSpec = tuple[str, int, int]  # (op, kernel, stride)


class Attend(nn.Module):
    """softmax(q k^T / sqrt(d) + bias) v: q (B', heads, Nq, d), k and v (B', heads, Nk, d), bias broadcastable to
    (B', heads, Nq, Nk)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale  # what SDPA uses by default; kept for attention_probs

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def attention_probs(module: Attend, inputs: tuple) -> torch.Tensor:
    """The probabilities (B', heads, Nq, Nk) of an Attend call, recomputed from its inputs (for forward hooks)."""
    q, k = inputs[0], inputs[1]
    logits = (q * module.scale) @ k.transpose(-2, -1)
    bias = inputs[3] if len(inputs) > 3 else None
    return (logits if bias is None else logits + bias).softmax(dim=-1)


class Attention(nn.Module):
    """Attention of `heads` heads on a side x side grid (+ `prefix` class tokens), or on a 1D sequence (side None).

    window -- attention runs inside window x window squares (window = side: over the whole grid), after a cyclic
      roll by `shift` (Swin) and with the additive `mask` (windows or 1, 1, N, N).
    q_pool, kv_pool -- (op, kernel, stride): Q, and K and V, are pooled inside each window (MViTv2, Hiera).
    rel_pos -- builds the relative-position bias module for the pooled Q and K/V sides.
    residual_pooling -- the pooled Q is added to the attention output (MViTv2).
    frames -- token frames one window holds (a clip under global attention), for 3D relative positions; the pools
      run over time too with `pool_kernel_t` > 1 (MViTv2's video models), else on each frame.
    unit -- the pools run on each unit x unit square of a token frame alone (separate-and-pad; 0: on the map).
    The output grid is side // window * the pooled Q side; dim_in -> dim.
    """

    def __init__(
        self,
        *,
        dim_in: int,
        dim: int,
        heads: int,
        side: Optional[int],
        window: Optional[int],
        shift: int = 0,
        mask: Optional[torch.Tensor] = None,
        q_pool: Optional[PoolSpec] = None,
        kv_pool: Optional[PoolSpec] = None,
        rel_pos: Optional[Callable[..., Optional[nn.Module]]] = None,
        residual_pooling: bool = False,
        qkv_bias: bool = True,
        prefix: int = 0,
        eps: float = 1e-5,
        frames: int = 1,
        pool_kernel_t: int = 1,
        unit: int = 0,
    ) -> None:
        super().__init__()
        if prefix and window != side:
            raise ValueError("class tokens need global attention")
        self.heads, self.side, self.window, self.shift, self.prefix, self.dim = heads, side, window, shift, prefix, dim
        head_dim = dim // heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim_in, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        pools = dict(channels=head_dim, eps=eps, kernel_t=pool_kernel_t, unit=unit)
        self.pool_q = Pool(*q_pool, **pools) if q_pool else None
        self.pool_k = Pool(*kv_pool, **pools) if kv_pool else None
        self.pool_v = Pool(*kv_pool, **pools) if kv_pool else None
        self.q_side = pooled_side(window, *q_pool[1:]) if q_pool else window
        self.kv_side = pooled_side(window, *kv_pool[1:]) if kv_pool else window
        self.rel_pos = rel_pos(self.q_side, self.kv_side, heads, head_dim, prefix, frames) if rel_pos is not None else None
        self.residual_pooling = residual_pooling
        self.register_buffer("mask", mask, persistent=False)
        self.attend = Attend(self.scale)

    @property
    def out_side(self) -> Optional[int]:
        return self.side // self.window * self.q_side if self.side else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, prefix + T * side^2, dim_in) -> (B, prefix + T * out_side^2, dim); T token frames (1: an image),
        windows on each frame, global attention over all of them."""
        b, _, c = x.shape
        nw = self.side // self.window if self.side else 1
        if nw > 1:  # B, T*s*s, C -> B*T, s, s, C -> B*T*nW^2, w*w, C (rolled by -shift first)
            w = self.window
            bt = b * frames_of(x, self.side)
            x = x.view(bt, self.side, self.side, c)
            if self.shift:
                x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
            x = x.view(bt, nw, w, nw, w, c).transpose(2, 3).reshape(bt * nw * nw, w * w, c)
        x = self.attend_windows(x)
        if nw > 1:  # B*T*nW^2, qs*qs, C -> B*T, nW*qs, nW*qs, C, rolled back -> B, T*out_side^2, C
            qs = self.q_side
            x = x.view(bt, nw, nw, qs, qs, self.dim).transpose(2, 3).reshape(bt, nw * qs, nw * qs, self.dim)
            if self.shift:
                x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
            x = x.reshape(b, -1, self.dim)
        return self.proj(x)

    def attend_windows(self, x: torch.Tensor) -> torch.Tensor:
        """Attention inside each window, before the output projection: x (B', prefix + V * window^2, dim_in) ->
        (B', prefix + V * q_side^2, dim); V token frames share a window under global attention over a clip."""
        q, k, v = self.heads_of(x)
        q = self.pooled(self.pool_q, q, self.window)
        k = self.pooled(self.pool_k, k, self.window)
        v = self.pooled(self.pool_v, v, self.window)
        out = self.attend(q, k, v, self.materialise(self.bias(q), q))
        if self.residual_pooling:
            out = out + q
        return out.transpose(1, 2).reshape(x.shape[0], -1, self.dim)

    def heads_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B', N, dim_in) -> q, k, v each (B', heads, N, head_dim)."""
        b, n, _ = x.shape
        return self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)

    @staticmethod
    def pooled(pool: Optional[Pool], t: torch.Tensor, side: int) -> torch.Tensor:
        """t (B', heads, V * side^2, d), V token frames of side x side each -> (B', heads, V * side'^2, d)."""
        if pool is None:
            return t
        b, h, _, d = t.shape
        return pool(t.reshape(b, h, -1, side, side, d)).reshape(b, h, -1, d)

    def bias(self, q: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """The additive bias of one window: relative positions (from the pooled `q` when they depend on it) plus
        the window mask; (heads, N, N), (windows, heads | 1, N, N) or (B', heads, Nq, Nk)."""
        bias = self.rel_pos(q) if self.rel_pos is not None else None
        if self.mask is not None:
            bias = self.mask if bias is None else self.mask + bias
        return bias

    def materialise(self, bias: Optional[torch.Tensor], q: torch.Tensor) -> Optional[torch.Tensor]:
        """`bias` shaped for SDPA with queries q (B', heads, Nq, d). CPU SDPA kernels are fastest with a dense mask
        of the full batch shape (measured: ~2.5x over a broadcast mask on Swin-B windows), so there the bias is
        expanded per call; CUDA kernels broadcast a (1, heads, N, N) mask themselves (materialising it cost
        ViT + RPE 2.5x on an H100). A per-window bias repeats over the batch: B' = batch x windows."""
        if bias is None:
            return None
        if bias.dim() == 3:
            bias = bias[None]
        nw, size = bias.shape[0], bias.shape[-2:]
        if nw > 1 or q.device.type == "cpu":
            bias = bias.expand(q.shape[0] // nw, nw, self.heads, *size).reshape(q.shape[0], self.heads, *size)
        return bias.to(q.dtype)
