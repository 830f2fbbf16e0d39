"""Attention kinds: global (ViT), (shifted) window (Swin) and mask-unit attention (Hiera)."""

from __future__ import annotations

from typing import Any, Optional

from ..geometry import effective_window
from .base import AttentionKind, Problem, StageContext


class Global(AttentionKind):
    """Every token attends to every token (on a 2D grid or a 1D pooled sequence)."""

    name = "global"
    needs_grid = False

    def describe(self, ctx: StageContext) -> str:
        return "global attn"

    def column(self, ctx: StageContext) -> str:
        return "global"


class Window(AttentionKind):
    """Swin: attention inside `window` x `window` squares; with `shift`, every odd block rolls the grid by half a
    window first (and masks tokens the roll made neighbours). A window at least as large as the grid is global."""

    name = "window"
    fields = ("window", "shift")

    def problems(self, ctx: StageContext) -> list[Problem]:
        st, side = ctx.stage, ctx.side
        out = []
        if side % effective_window(side, st.window):
            out.append(("window", f"window {st.window} does not tile the {side}x{side} grid"))
        if st.pools_kv:
            out.append(("kv_stride", "window attention takes no KV pooling"))
        if st.shift and (ctx.downsample.pools_in_block or st.pool_stride1):
            out.append(("shift", "shifted windows take no Q pooling"))
        return out

    def _window(self, ctx: StageContext, side: int) -> int:
        return effective_window(side, ctx.stage.window)

    def layout(self, ctx: StageContext, side: Optional[int], unit: int, index: int) -> tuple[Optional[int], int]:
        window = self._window(ctx, side)
        return window, window // 2 if ctx.stage.shift and window < side and index % 2 == 1 else 0

    def mask(self, ctx: StageContext, side: int, window: int, shift: int) -> Any:
        if not shift:
            return None
        from ...nn.position import shifted_window_mask

        return shifted_window_mask(side, window, shift)[:, None]  # nW, 1, N, N

    def describe(self, ctx: StageContext) -> str:
        if self._window(ctx, ctx.side) == ctx.side:
            return "global attn"
        return f"{'shifted ' if ctx.stage.shift else ''}window {ctx.stage.window} attn"

    def column(self, ctx: StageContext) -> str:
        if self._window(ctx, ctx.side) == ctx.side:
            return "global"
        return f"{'swin' if ctx.stage.shift else 'win'}{ctx.stage.window}"

    def one_map(self, ctx: StageContext) -> bool:
        return self._window(ctx, ctx.side) >= ctx.side

    def shrink(self, stage: Any, old_side: int, new_side: int) -> dict[str, Any]:
        """Windows keep their share of the grid (Swin's 7 of 56 -> 4 of 32)."""
        return {"window": max(1, int(stage.window * new_side / old_side + 0.5))} if stage.window else {}

    def sparse(self, ctx: StageContext, unit: int) -> Optional[str]:
        window = self._window(ctx, ctx.side)
        if window < ctx.side and (window != unit or ctx.stage.shift):
            return (f"{'shifted ' if ctx.stage.shift else ''}window attention on {window}x{window} windows crosses "
                    f"{unit}x{unit}-token mask units (GreenMIM's group window attention runs it sparse: method "
                    "greenmim)")
        return None


class MaskUnit(AttentionKind):
    """Hiera: local attention inside each mask unit (`mask_unit` stem tokens wide, halving with every Q pooling),
    kept by the Q-pooling first block of the next stage, which works at this stage's resolution."""

    name = "mask_unit"
    spec_fields = ("mask_unit",)
    multiscale = True
    carries_into_pooling = True

    def problems(self, ctx: StageContext) -> list[Problem]:
        out = []
        if ctx.unit < 1 or ctx.side % ctx.unit:
            out.append(("attention", f"mask units of {ctx.spec.mask_unit} stem tokens give {ctx.unit}-token units "
                                     f"here, which do not tile the {ctx.side}x{ctx.side} grid"))
        if ctx.stage.pools_kv:
            out.append(("kv_stride", "mask-unit attention takes no KV pooling"))
        return out

    def layout(self, ctx: StageContext, side: Optional[int], unit: int, index: int) -> tuple[Optional[int], int]:
        return unit, 0

    def describe(self, ctx: StageContext) -> str:
        return f"mask-unit {ctx.unit}x{ctx.unit} attn"

    def column(self, ctx: StageContext) -> str:
        return f"mu{ctx.unit}"

    def one_map(self, ctx: StageContext) -> bool:
        return False

    def sparse(self, ctx: StageContext, unit: int) -> Optional[str]:
        if ctx.unit != unit:
            spec = ctx.spec
            return (f"mask-unit attention works on units of {spec.mask_unit} stem tokens ({ctx.unit} here), the mask "
                    f"unit is {unit}: set mask_unit to {spec.mask_unit * spec.patch_size} px")
        return None

    def greenmim(self, ctx: StageContext) -> Optional[str]:
        return "mask-unit attention"
