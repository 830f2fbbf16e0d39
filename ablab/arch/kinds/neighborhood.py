"""Neighbourhood attention: each token attends to the tokens of the `window` x `window` square centred on it
(fewer at the borders), on the whole grid -- a small local attention, and the worked example of adding a kind
(docs/extending.md): this module, one registry line, a transform and a test."""

from __future__ import annotations

from typing import Any, Optional

from .base import AttentionKind, Problem, StageContext


class Neighborhood(AttentionKind):
    """Local attention over each token's `window` x `window` neighbourhood (an odd size), as one masked map."""

    name = "neighborhood"
    fields = ("window",)

    def problems(self, ctx: StageContext) -> list[Problem]:
        st, out = ctx.stage, []
        if st.window < 1 or st.window % 2 == 0:
            out.append(("window", f"a neighbourhood is an odd number of tokens wide, got {st.window}"))
        if st.pools_kv or st.pool_stride1 or ctx.downsample.pools_in_block:
            out.append(("attention", "neighbourhood attention takes no Q or KV pooling"))
        return out

    def mask(self, ctx: StageContext, side: int, window: int, shift: int) -> Any:
        """-inf between tokens more than window // 2 rows or columns apart, on the whole side x side grid."""
        import torch

        radius = ctx.stage.window // 2
        ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        near = ((ys[:, None] - ys[None, :]).abs() <= radius) & ((xs[:, None] - xs[None, :]).abs() <= radius)
        return torch.zeros(near.shape).masked_fill(~near, float("-inf"))[None, None]  # 1, 1, N, N

    def describe(self, ctx: StageContext) -> str:
        return f"{ctx.stage.window}x{ctx.stage.window} neighbourhood attn"

    def column(self, ctx: StageContext) -> str:
        return f"nb{ctx.stage.window}"

    def sparse(self, ctx: StageContext, unit: int) -> Optional[str]:
        return f"{ctx.stage.window}x{ctx.stage.window} neighbourhood attention reads tokens of neighbouring units"

    def greenmim(self, ctx: StageContext) -> Optional[str]:
        return "neighbourhood attention"
