"""Downsample kinds: none, patch merging (Swin, HiViT), Q pooling (MViTv2, Hiera), 1D and 2D token pooling (HVT)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..geometry import pooled_side
from .base import DownsampleKind, Problem, StageContext

if TYPE_CHECKING:
    from torch import nn

    from ..spec import Stage


class NoDownsample(DownsampleKind):
    """The stage takes the previous stage's tokens as they are (the first stage takes the stem's)."""

    name = "none"


def _even_grid(ctx: StageContext) -> list[Problem]:
    side = ctx.side_in
    if side is None or side % 2:
        return [("downsample", f"{ctx.stage.downsample} needs an even 2D grid, got {side}")]
    return []


def _halves_units(ctx: StageContext, unit: int) -> Optional[str]:
    if unit % 2:
        return f"a mask unit is {unit} tokens wide here: 2x2 downsampling would merge tokens of different units"
    return None


class _Halving(DownsampleKind):
    halves = True

    def geometry(self, side: Optional[int], tokens: int, stage: Stage) -> tuple[Optional[int], int]:
        side = side // 2 if side else None
        return side, side * side if side else tokens // 4

    def problems(self, ctx: StageContext) -> list[Problem]:
        return _even_grid(ctx)

    def sparse(self, ctx: StageContext, unit: int) -> Optional[str]:
        return _halves_units(ctx, unit)


class PatchMerge(_Halving):
    """Swin / HiViT: concatenate each 2x2 neighbourhood -> LayerNorm(4C) -> Linear(4C -> dim)."""

    name = "patch_merge"

    def build(self, ctx: StageContext, dim_in: int) -> nn.Module:
        from ...nn.embed import PatchMerge as Merge

        return Merge(dim=dim_in, out_dim=ctx.stage.dim, grid=ctx.side_in, eps=ctx.spec.norm_eps)

    def width(self, dim_in: int, stage: Stage) -> int:
        return stage.dim

    def describe(self, ctx: StageContext) -> Optional[str]:
        return "<- patch_merge"


class QPool(_Halving):
    """MViTv2 / Hiera: the stage's first block pools Q and its shortcut by 2 (`pool`, kernel `q_kernel`) and
    widens; there is no module between the stages."""

    name = "q_pool"
    fields = ("pool", "q_kernel")
    pools_in_block = True

    def problems(self, ctx: StageContext) -> list[Problem]:
        st, out = ctx.stage, _even_grid(ctx)
        if st.q_kernel < 2 or (st.q_kernel != 2 and st.q_kernel % 2 == 0):
            out.append(("q_kernel", f"Q pooling with stride 2 needs a kernel of 2 or an odd one (its padding "
                                    f"kernel // 2 keeps the grid), got {st.q_kernel}"))
        if st.pos_embed:
            out.append(("pos_embed", "a q_pool stage starts inside its first block; put the embedding on another "
                                     "stage"))
        return out

    def describe(self, ctx: StageContext) -> Optional[str]:
        return f"<- q_pool ({ctx.stage.pool} k{ctx.stage.q_kernel}/s2)"

    def column(self, ctx: StageContext) -> str:
        return f"{ctx.stage.pool}{ctx.stage.q_kernel}"

    def sparse(self, ctx: StageContext, unit: int) -> Optional[str]:
        if ctx.stage.q_kernel != 2 and not ctx.spec.separate_and_pad:
            return (f"Q pooling with kernel {ctx.stage.q_kernel} > stride 2 overlaps mask units "
                    "(kernel_equals_stride or separate_and_pad makes it sparse)")
        return _halves_units(ctx, unit)

    def greenmim(self, ctx: StageContext) -> Optional[str]:
        return "Q pooling between stages"


class TokenPool(DownsampleKind):
    """HVT: a 1D `pool` (kernel `q_kernel`, stride 2, no padding) over the token sequence; `conv` is a dense Conv1d
    (HVT Table 3). The 2D layout is gone after it."""

    name = "token_pool"
    fields = ("pool", "q_kernel")

    def geometry(self, side: Optional[int], tokens: int, stage: Stage) -> tuple[Optional[int], int]:
        return None, (tokens - stage.q_kernel) // 2 + 1

    def problems(self, ctx: StageContext) -> list[Problem]:
        if ctx.stage.q_kernel < 2:
            return [("q_kernel", f"a 1D token pool needs a kernel >= 2, got {ctx.stage.q_kernel}")]
        return []

    def build(self, ctx: StageContext, dim_in: int) -> nn.Module:
        from ...nn.embed import TokenPool as Pool

        return Pool(op=ctx.stage.pool, dim=ctx.stage.dim, kernel=ctx.stage.q_kernel)

    def describe(self, ctx: StageContext) -> Optional[str]:
        return f"<- token_pool ({ctx.stage.pool} k{ctx.stage.q_kernel}/s2)"

    def column(self, ctx: StageContext) -> str:
        return f"{ctx.stage.pool}{ctx.stage.q_kernel}"

    def sparse(self, ctx: StageContext, unit: int) -> Optional[str]:
        return "1D token pooling (HVT) pools along the whole token sequence, across units"

    def greenmim(self, ctx: StageContext) -> Optional[str]:
        return "1D token pooling"


class GridPool(DownsampleKind):
    """HVT Table 9: a 2D `pool` (max / avg, kernel `q_kernel`, stride 2, padding kernel // 2 unless kernel = 2)
    over the token grid, so 28x28 -> 14x14 -> 7x7; the width is kept and the 2D layout too."""

    name = "grid_pool"
    fields = ("pool", "q_kernel")
    halves = True  # the mask units halve with the grid; problems() keeps the width

    def geometry(self, side: Optional[int], tokens: int, stage: Stage) -> tuple[Optional[int], int]:
        if not side:
            return side, tokens  # no grid to pool: problems() says so
        side = pooled_side(side, stage.q_kernel, 2)
        return side, side * side

    def problems(self, ctx: StageContext) -> list[Problem]:
        st, side, prev = ctx.stage, ctx.side_in, ctx.prev
        if side is None:
            return [("downsample", "grid_pool needs a 2D grid, and a token_pool before it left a 1D sequence")]
        out = []
        if st.pool not in ("max", "avg"):
            out.append(("pool", f"grid_pool pools by max or avg, got {st.pool!r}"))
        if st.q_kernel < 2 or (st.q_kernel != 2 and st.q_kernel % 2 == 0):
            out.append(("q_kernel", f"2D pooling with stride 2 needs a kernel of 2 or an odd one (its padding "
                                    f"kernel // 2 halves the grid, rounding up), got {st.q_kernel}"))
        elif st.q_kernel == 2 and side % 2:
            out.append(("downsample", f"grid_pool with kernel 2 (no padding) needs an even grid, got {side}x{side}: "
                                      "use an odd kernel"))
        if prev is not None and st.dim != prev.stage.dim:
            out.append(("dim", f"grid_pool keeps the width ({prev.stage.dim} -> {st.dim})"))
        return out

    def build(self, ctx: StageContext, dim_in: int) -> nn.Module:
        from ...nn.embed import GridPool as Pool

        return Pool(op=ctx.stage.pool, kernel=ctx.stage.q_kernel, grid=ctx.side_in)

    def describe(self, ctx: StageContext) -> Optional[str]:
        return f"<- grid_pool ({ctx.stage.pool} k{ctx.stage.q_kernel}x{ctx.stage.q_kernel}/s2)"

    def column(self, ctx: StageContext) -> str:
        return f"{ctx.stage.pool}{ctx.stage.q_kernel}x{ctx.stage.q_kernel}"

    def sparse(self, ctx: StageContext, unit: int) -> Optional[str]:
        if ctx.stage.q_kernel != 2:
            return f"2D token pooling with kernel {ctx.stage.q_kernel} > stride 2 overlaps mask units"
        return "2D token pooling runs on the dense grid only (sparse MAE downsamples by patch merging)"

    def greenmim(self, ctx: StageContext) -> Optional[str]:
        return "2D token pooling"
