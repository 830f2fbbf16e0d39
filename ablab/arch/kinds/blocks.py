"""Block kinds: pre-norm attention + MLP blocks (every transformer here) and MLP-only blocks (HiViT's low stages)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .base import BlockKind, Problem, StageContext

if TYPE_CHECKING:
    from torch import nn

    from ..spec import Stage


class AttentionBlock(BlockKind):
    """x + attn(norm(x)), then x + mlp(norm(x)). The attention is the stage's attention kind with its relative
    positions and MViTv2's pooling: K and V pooled by `pool` (kernel `kv_kernel`, stride `kv_stride`) in every
    block, Q pooled at stride 1 too with `pool_stride1`, the pooled Q added back with `residual_pooling`.
    The first block of a Q-pooling stage works at the previous resolution, pools Q and its shortcut by 2 and keeps
    the previous stage's locality when that kind carries into pooling (Hiera's mask units)."""

    name = "attention"
    layers = 2

    def reads(self, stage: Stage) -> tuple[str, ...]:
        return (("kv_kernel", "pool") if stage.pools_kv else ()) + (("q_kernel", "pool") if stage.pool_stride1 else ())

    def problems(self, ctx: StageContext) -> list[Problem]:
        st, side = ctx.stage, ctx.side
        if st.heads <= 0 or st.dim % st.heads:
            return [("heads", f"attention needs heads > 0 dividing dim {st.dim}, got {st.heads}")]
        if side is None and (ctx.attention.needs_grid or ctx.rel_pos.needs_grid or st.multiscale):
            return [("attention", "windows, relative positions and 2D pooling need a 2D grid (not after a token_pool)")]
        out = ctx.attention.problems(ctx) + ctx.rel_pos.problems(ctx)
        if st.pools_kv and side % st.kv_stride:
            out.append(("kv_stride", f"KV stride {st.kv_stride} does not divide the {side}x{side} grid"))
        if st.pools_kv and st.kv_kernel != st.kv_stride and st.kv_kernel % 2 == 0:
            out.append(("kv_kernel", f"an overlapping KV pool needs an odd kernel, got {st.kv_kernel}"))
        if st.pool_stride1 and st.q_kernel % 2 == 0:
            out.append(("q_kernel", f"stride-1 pools need an odd kernel (padding kernel // 2 keeps the grid), got "
                                    f"{st.q_kernel}"))
        pools = st.pools_kv or st.pool_stride1 or ctx.downsample.pools_in_block
        if pools and ctx.spec.pool_kernel_t > 1 and not ctx.attention.one_map(ctx):
            out.append(("attention", f"pools over time (pool_kernel_t {ctx.spec.pool_kernel_t}) need attention over "
                                     "every token frame at once (global)"))
        local = ctx.attention.carries_into_pooling or (ctx.prev is not None and ctx.prev.attention.carries_into_pooling)
        if ctx.downsample.pools_in_block and local and st.q_kernel != 2 and not ctx.spec.separate_and_pad:
            out.append(("q_kernel", "Q pooling inside mask units must not overlap (kernel = stride = 2); overlapping "
                                    "kernels need Hiera's separate-and-pad trick (Fig. 4d)"))
        return out

    def build(self, ctx: StageContext, index: int, dim_in: int, dim_out: int, drop_path: float) -> nn.Module:
        from ...nn.attention import Attention
        from ...nn.blocks import Block

        spec, st = ctx.spec, ctx.stage
        pooling = index == 0 and ctx.downsample.pools_in_block  # this block pools Q and the shortcut by 2
        side, unit, owner = ctx.side, ctx.unit, ctx
        if pooling:
            side, unit = ctx.side_in, ctx.prev.unit
            owner = ctx.prev if ctx.prev.attention.carries_into_pooling else ctx
        window, shift = owner.attention.layout(owner, side, unit, index)
        frames = spec.t_tokens if window == side else 1  # token frames one window holds
        q_stride = 2 if pooling else 1
        separate = unit if spec.separate_and_pad else 0  # every pool on each mask unit alone (Hiera Fig. 4d)
        attn = Attention(
            dim_in=dim_in, dim=st.dim, heads=st.heads, side=side, window=window, shift=shift,
            mask=owner.attention.mask(owner, side, window, shift) if side else None,
            q_pool=(st.pool, st.q_kernel, q_stride) if pooling or st.pool_stride1 else None,
            kv_pool=(st.pool, st.kv_kernel, st.kv_stride) if st.pools_kv else None,
            rel_pos=ctx.rel_pos.build, residual_pooling=st.residual_pooling, qkv_bias=spec.qkv_bias,
            prefix=int(spec.class_token), eps=spec.norm_eps, frames=frames,
            pool_kernel_t=spec.pool_kernel_t if frames > 1 else 1, unit=separate)
        return Block(dim_in=dim_in, dim=st.dim, dim_out=dim_out, mlp_ratio=st.mlp_ratio, attn=attn,
                     shortcut_pool=(st.q_kernel, 2) if pooling else None, unit=separate, drop_path=drop_path,
                     eps=spec.norm_eps)

    def describe(self, ctx: StageContext) -> str:
        return ctx.attention.describe(ctx)

    def column(self, ctx: StageContext) -> str:
        return ctx.attention.column(ctx)

    def sparse(self, ctx: StageContext, unit: int) -> Optional[str]:
        """Pools stay inside mask units when the model separates them (separate_and_pad) or when a KV pool's kernel
        is its stride and divides the unit; a unit is one token frame deep, so temporal pools need the trick too."""
        st, spec = ctx.stage, ctx.spec
        reason = ctx.rel_pos.sparse(ctx, unit)
        inside = st.kv_kernel == st.kv_stride and unit % st.kv_stride == 0
        if reason is None and st.pools_kv and not (spec.separate_and_pad or inside):
            reason = (f"KV pooling (kernel {st.kv_kernel}, stride {st.kv_stride}) pools across mask units "
                      "(separate_and_pad, kernel_equals_stride or mask_unit_attention makes it sparse)")
        if reason is None and st.pool_stride1 and st.q_kernel > 1 and not spec.separate_and_pad:
            reason = f"stride-1 {st.pool} pools of kernel {st.q_kernel} read neighbouring units (separate_and_pad)"
        pools = st.pools_kv or st.pool_stride1 or ctx.downsample.pools_in_block
        if reason is None and pools and spec.pool_kernel_t > 1 and not spec.separate_and_pad:
            reason = (f"pools of temporal kernel {spec.pool_kernel_t} read the next token frame's units "
                      "(separate_and_pad)")
        return reason or ctx.attention.sparse(ctx, unit)

    def greenmim(self, ctx: StageContext) -> Optional[str]:
        st = ctx.stage
        reason = ctx.attention.greenmim(ctx)
        if reason is None and (st.pools_kv or st.residual_pooling):
            reason = "pooling attention"
        return reason or ctx.rel_pos.greenmim(ctx)


class MlpBlock(BlockKind):
    """HiViT's low stages: x + mlp(norm(x)) only, one residual layer (a paper module is two of them); no token
    mixes with another."""

    name = "mlp"
    attends = False
    layers = 1

    def problems(self, ctx: StageContext) -> list[Problem]:
        st = ctx.stage
        if st.heads != 0 or st.rel_pos != "none" or st.attention != "global" or st.shift or st.multiscale:
            return [("block", "MLP-only blocks take no heads, rel_pos, windows, shift or pooling")]
        return []

    def build(self, ctx: StageContext, index: int, dim_in: int, dim_out: int, drop_path: float) -> nn.Module:
        from ...nn.blocks import Block

        st = ctx.stage
        return Block(dim_in=dim_in, dim=st.dim, dim_out=dim_out, mlp_ratio=st.mlp_ratio, attn=None,
                     drop_path=drop_path, eps=ctx.spec.norm_eps)

    def describe(self, ctx: StageContext) -> str:
        return "MLP-only"

    def column(self, ctx: StageContext) -> str:
        return "mlp"
