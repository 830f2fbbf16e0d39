"""Relative-position kinds: none, Swin's learned bias table, MViTv2's decomposed relative positions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .base import Problem, RelPosKind, StageContext

if TYPE_CHECKING:
    from torch import nn


class NoRelPos(RelPosKind):
    """No relative positions."""

    name = "none"
    needs_grid = False

    def describe(self, ctx: StageContext) -> Optional[str]:
        return None


class BiasTable(RelPosKind):
    """Swin: a learned (2W-1)^2 x heads table looked up into a (heads, W^2, W^2) bias; class tokens get none."""

    name = "bias"

    def problems(self, ctx: StageContext) -> list[Problem]:
        st = ctx.stage
        if st.pools_kv or st.pool_stride1 or ctx.downsample.pools_in_block:
            return [("rel_pos", "a relative position bias table needs unpooled queries and keys (decomposed "
                                "relative positions follow pooling)")]
        if ctx.spec.t_tokens > 1 and ctx.attention.one_map(ctx):
            return [("rel_pos", "a relative position bias table is 2D: attention across token frames needs a 3D "
                                "one (Video Swin's), which ablab does not have; use windows or no rel_pos")]
        return []

    def build(self, q_side: int, kv_side: int, heads: int, head_dim: int, prefix: int,
              frames: int = 1) -> Optional[nn.Module]:
        from ...nn.position import RelPosBias

        return RelPosBias(window=q_side, heads=heads, prefix=prefix)


class Decomposed(RelPosKind):
    """MViTv2: q . rel_pos_h[dy] + q . rel_pos_w[dx] (+ q . rel_pos_t[dt] over a clip's token frames) added to the
    logits, for pooled queries and keys alike; sparse MAE looks them up at the visible tokens' grid positions."""

    name = "decomposed"
    multiscale = True

    def problems(self, ctx: StageContext) -> list[Problem]:
        if ctx.stage.attention != "global":
            return [("rel_pos", "decomposed relative positions are for global (pooled) attention")]
        return []

    def build(self, q_side: int, kv_side: int, heads: int, head_dim: int, prefix: int,
              frames: int = 1) -> Optional[nn.Module]:
        from ...nn.position import DecomposedRelPos

        return DecomposedRelPos(q_side=q_side, kv_side=kv_side, head_dim=head_dim, frames=frames)

    def greenmim(self, ctx: StageContext) -> Optional[str]:
        return "decomposed relative positions"
