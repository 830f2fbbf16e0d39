"""Hiera's simplification of MViTv2 (Hiera / "Simple MViT" Section 3.2, Table 1), one change per step.

Steps marked * in Table 1 (absolute positions, maxpools, stride-1 maxpools) still pool with overlapping
kernels; sparse MAE pre-training of those models needs Hiera's separate-and-pad trick (Fig. 4d), which
`separate_and_pad` adds as a step of its own (so its cost is measured apart from the rows it enables). From
"kernel = stride" on, no kernel crosses a mask unit and the trick goes.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from ..arch.spec import ArchSpec, canonical
from .registry import require, transform


def _pooled_stages(spec: ArchSpec) -> list[int]:
    return [i for i, st in enumerate(spec.stages) if st.multiscale]


def _each(spec: ArchSpec, indices: list[int], **changes) -> ArchSpec:
    for i in indices:
        spec = spec.with_stage(i, **changes)
    return spec


def _switch_off(spec: ArchSpec, flag: str, missing: str) -> ArchSpec:
    """Set boolean stage field `flag` to False wherever it is on; PreconditionError(missing) if nowhere."""
    stages = [i for i, st in enumerate(spec.stages) if getattr(st, flag)]
    require(bool(stages), missing)
    return _each(spec, stages, **{flag: False})


@transform(paper="Hiera Fig. 4d: separate-and-pad, which Table 1's * rows need for sparse MAE")
def separate_and_pad(spec: ArchSpec, mask_unit: int = 8) -> ArchSpec:
    """Run every pool (Q, K/V, the pooled shortcut) on each mask unit alone, zero-padded at its border, in training
    and inference, so that sparse MAE can pre-train a model whose kernels overlap. A unit is `mask_unit` stem
    tokens wide (32 px at a 4 px stem) and one token frame deep; only pools whose kernel crosses a unit change.
    """
    require(not spec.separate_and_pad, "the model already pools inside mask units")
    out = dataclasses.replace(spec, separate_and_pad=True, mask_unit=mask_unit)
    require(canonical(out).separate_and_pad, "no pool's kernel reaches past its stride: nothing to separate")
    return out


@transform(paper="Hiera Table 1: replace rel pos with absolute *")
def absolute_position(spec: ArchSpec) -> ArchSpec:
    """Replace MViTv2's decomposed relative positions with one learned absolute embedding at the stem; a clip's is
    a spatial table plus a temporal one (Hiera's video models, MViT's separate embeddings).

    * Sparse MAE of this step needs the separate-and-pad trick (Hiera Fig. 4d: the `separate_and_pad` step).
    """
    rel = [i for i, st in enumerate(spec.stages) if st.rel_pos == "decomposed"]
    require(bool(rel), "no stage has decomposed relative positions to replace")
    require(not any(st.pos_embed for st in spec.stages), "the model already has an absolute position embedding")
    out = _each(spec, rel, rel_pos="none").with_stage(0, pos_embed=True)
    return dataclasses.replace(out, sep_pos_embed=True) if spec.frames > 1 else out


@transform(paper="Hiera Table 1: replace convs with maxpools *")
def pool_with(spec: ArchSpec, op: Literal["max", "avg"] = "max") -> ArchSpec:
    """Pool Q and KV with max (or avg) pooling of the same kernel and stride instead of depthwise conv + norm.

    * Sparse MAE of this step needs the separate-and-pad trick (Hiera Fig. 4d: the `separate_and_pad` step).
    """
    stages = [i for i in _pooled_stages(spec) if spec.stages[i].pool != op]
    require(bool(stages), f"no pooling stage uses anything but {op} pooling")
    return _each(spec, stages, pool=op)


@transform(paper="Hiera Table 1: delete stride=1 maxpools *")
def drop_stride1_pools(spec: ArchSpec) -> ArchSpec:
    """Stop pooling where the stride is 1: Q pools only at stage transitions, KV only where its stride > 1.

    * Sparse MAE of this step needs the separate-and-pad trick (Hiera Fig. 4d: the `separate_and_pad` step).
    """
    return _switch_off(spec, "pool_stride1", "no stage pools at stride 1")


@transform(paper="Hiera Table 1: set kernel size equal to stride")
def kernel_equals_stride(spec: ArchSpec) -> ArchSpec:
    """Make every pooling kernel equal its stride (Q and shortcut 2x2, KV = KV stride): no overlap, no padding;
    over a clip's time, where the stride is 1, the kernel becomes 1. No kernel crosses a mask unit any more, so
    the separate-and-pad trick goes (Hiera: "without the separate-and-pad trick")."""
    require(not any(st.pool_stride1 for st in spec.stages), "delete the stride-1 pools first (their kernel is 1)")
    out = dataclasses.replace(spec, pool_kernel_t=1, separate_and_pad=False)
    for i, st in enumerate(spec.stages):
        changes = {}
        if st.downsample == "q_pool" and st.q_kernel != 2:
            changes["q_kernel"] = 2
        if st.kv_stride > 1 and st.kv_kernel != st.kv_stride:
            changes["kv_kernel"] = st.kv_stride
        if changes:
            out = out.with_stage(i, **changes)
    require(out != spec, "every pooling kernel already equals its stride")
    return out


@transform(paper="Hiera Table 1: delete q attention residuals")
def drop_residual_pooling(spec: ArchSpec) -> ArchSpec:
    """Remove MViTv2's residual pooling connection (pooled Q added to the attention output)."""
    return _switch_off(spec, "residual_pooling", "no stage has residual pooling")


@transform(paper="Hiera Table 1: replace kv pooling with MU attn")
def mask_unit_attention(spec: ArchSpec, mask_unit: int = 8, stages: Optional[list[int]] = None,
                        to_global: Optional[list[int]] = None) -> ArchSpec:
    """Replace KV pooling with local attention inside each mask unit (default: the stages that pool KV); in the
    stages `to_global` KV pooling goes without a replacement (global attention: MViTv2's video base pools KV in
    three stages, Hiera attends globally from the third).

    A mask unit is `mask_unit` stem tokens wide (32 px at a 4 px stem) and shrinks with each Q pooling, so
    unlike a fixed window it never reaches into a deleted unit (Hiera Fig. 6).
    """
    targets = [i for i, st in enumerate(spec.stages) if st.kv_stride > 1] if stages is None else stages
    to_global = to_global or []
    require(bool(targets), "no stage pools KV")
    require(not set(targets) & set(to_global), "a stage takes mask units or global attention, not both")
    for i in to_global:
        require(0 <= i < len(spec.stages) and spec.stages[i].kv_stride > 1, f"stage {i} does not pool KV")
    for i in targets:
        st = spec.stages[i]
        require(0 <= i < len(spec.stages) and st.block == "attention", f"stage {i} has no attention")
        require(st.rel_pos == "none", f"stage {i}: drop relative positions first (mask units have no RPE here)")
        require(not st.pool_stride1, f"stage {i}: delete the stride-1 pools first")
    out = dataclasses.replace(spec, mask_unit=mask_unit)
    for i in targets:
        out = out.with_stage(i, attention="mask_unit", kv_stride=1)
    for i in to_global:
        out = out.with_stage(i, kv_stride=1)
    return out
