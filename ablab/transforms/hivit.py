"""HiViT's transition from ViT-B to Swin-B (HiViT Section 3.2, Table 2, Fig. 1), one change per step."""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from ..arch.spec import ArchSpec, Stage
from .registry import require, transform


def _plain(spec: ArchSpec, step: str) -> Stage:
    """The single attention stage of a plain ViT; raises unless `spec` is one."""
    require(len(spec.stages) == 1 and spec.stages[0].block == "attention",
            f"{step} needs a plain ViT (one stage of attention blocks); this spec has {len(spec.stages)} stages")
    return spec.stages[0]


@transform(paper="HiViT Table 2 (a): (o) + Depth")
def deepen_narrow(spec: ArchSpec, depth: int = 24, dim: int = 512, heads: int = 8) -> ArchSpec:
    """Make a plain ViT deeper and narrower (ViT-B 12x768 -> 24x512, 8 heads of 64)."""
    st = _plain(spec, "deepen_narrow")
    require(depth > 0 and dim > 0 and heads > 0 and dim % heads == 0,
            f"depth, dim, heads must be positive with dim divisible by heads; got {depth}, {dim}, {heads}")
    require((depth, dim, heads) != (st.depth, st.dim, st.heads), "depth, dim and heads are already these values")
    return spec.with_stage(0, depth=depth, dim=dim, heads=heads)


@transform(paper="HiViT Table 2 (b): (a) + RPE")
def relative_position_bias(spec: ArchSpec, stages: Optional[list[int]] = None) -> ArchSpec:
    """Add a learned relative position bias ((2W-1)^2 x heads per block) to attention stages (all by default).

    The absolute position embedding stays: Table 2's 76.8M counts both (76.7M would mean it was dropped).
    """
    targets = [i for i, st in enumerate(spec.stages) if st.block == "attention"] if stages is None else stages
    for i in targets:
        require(0 <= i < len(spec.stages) and spec.stages[i].block == "attention", f"stage {i} has no attention")
        require(spec.stages[i].rel_pos == "none", f"stage {i} already has a relative position bias")
    require(bool(targets), "the spec has no attention stage")
    for i in targets:
        spec = spec.with_stage(i, rel_pos="bias")
    return spec


def _prepend_low_stages(spec: ArchSpec, low: list[Stage], replace_blocks: int, step: str) -> ArchSpec:
    """Put `low` stages in front of a plain ViT's stage, shrink the stem to match, drop `replace_blocks` blocks.

    The main stage keeps its absolute position embedding, now added where it starts (after the merges)."""
    st = _plain(spec, step)
    require(not spec.class_token, f"{step} makes the model hierarchical; remove the class token first (pool: avg)")
    factor = 2 ** len(low)
    require(spec.patch_size % factor == 0,
            f"patch size {spec.patch_size} cannot be split into {len(low)} merges (needs a multiple of {factor})")
    require(0 <= replace_blocks < st.depth, f"replace_blocks must be in [0, {st.depth}), got {replace_blocks}")
    main = dataclasses.replace(st, depth=st.depth - replace_blocks, downsample="patch_merge")
    return dataclasses.replace(
        spec, stages=tuple(low) + (main,), patch_size=spec.patch_size // factor, stem_norm=True
    )


@transform(paper="HiViT Table 2 (c): (b) + Hierarchical")
def hierarchical_patch_embed(
    spec: ArchSpec,
    dims: list[int] = [128, 256],
    depths: list[int] = [4, 4],
    mlp_ratio: float = 3.0,
    replace_blocks: int = 4,
) -> ArchSpec:
    """Replace the first blocks with HiViT's hierarchical patch embedding: MLP-only stages joined by patch merging.

    Table 2 counts 2 'modules' per low stage; in HiViT's code each module is two MLP blocks (ratio 3), so
    depths [4, 4] by default. No token mixes with another before the main stage, so MAE can drop masked
    units at the input (see the masked-image-modeling issue).
    """
    require(len(dims) == len(depths) and dims, "dims and depths must be non-empty lists of equal length")
    low = [
        Stage(depth=d, dim=c, heads=0, block="mlp", mlp_ratio=mlp_ratio, downsample="patch_merge" if i else "none")
        for i, (c, d) in enumerate(zip(dims, depths))
    ]
    return _prepend_low_stages(spec, low, replace_blocks, "hierarchical_patch_embed")


@transform(paper="HiViT Table 2 (c'): (b) + Low Att.")
def window_attention_low_stages(
    spec: ArchSpec,
    dims: list[int] = [128, 256],
    depths: list[int] = [2, 2],
    heads: list[int] = [4, 8],
    window: int = 7,
    shift: bool = True,
    replace_blocks: int = 4,
    pos_embed: Literal["keep", "drop"] = "keep",
) -> ArchSpec:
    """Replace the first blocks with Swin-style low stages: (shifted-)window attention at 56^2 and 28^2.

    Blocks copy the main stage's MLP ratio and position bias. `pos_embed: drop` removes the absolute
    position embedding as Swin's code does (Table 2's 66.3M for (c') is only reached that way).
    """
    main = _plain(spec, "window_attention_low_stages")
    require(len(dims) == len(depths) == len(heads) and dims, "dims, depths and heads must have equal lengths")
    low = [
        Stage(depth=d, dim=c, heads=h, mlp_ratio=main.mlp_ratio, attention="window", window=window, shift=shift,
              rel_pos=main.rel_pos, downsample="patch_merge" if i else "none")
        for i, (c, d, h) in enumerate(zip(dims, depths, heads))
    ]
    out = _prepend_low_stages(spec, low, replace_blocks, "window_attention_low_stages")
    return out.with_stage(len(low), pos_embed=False) if pos_embed == "drop" else out


@transform(paper="HiViT Table 2 (d): (c') + Stage 4")
def add_stage4(
    spec: ArchSpec,
    depth: int = 2,
    window: int = 7,
    shift: bool = True,
    heads: Optional[list[int]] = None,
) -> ArchSpec:
    """Add a stage 4: the last `depth` blocks move behind a patch merging; stage 3 gets (shifted) windows.

    The new stage has twice the width (and heads); `heads` optionally resets every stage's heads
    (Swin-B uses 32-dim heads: [4, 8, 16, 32]).
    """
    require(len(spec.stages) > 1, "add_stage4 needs a hierarchical model; apply a hierarchical step first")
    last = spec.stages[-1]
    require(last.block == "attention", "the last stage must be an attention stage")
    require(0 < depth < last.depth, f"depth must be in (0, {last.depth}), got {depth}")
    require((spec.grids()[-1] or 1) % 2 == 0, f"the last grid ({spec.grids()[-1]}) must be an even 2D grid")
    new = dataclasses.replace(last, depth=depth, dim=2 * last.dim, heads=2 * last.heads, attention="window",
                              window=window, shift=shift, downsample="patch_merge", pos_embed=False)
    mid = dataclasses.replace(last, depth=last.depth - depth, attention="window", window=window, shift=shift)
    out = dataclasses.replace(spec, stages=spec.stages[:-1] + (mid, new))
    if heads is not None:
        require(len(heads) == len(out.stages), f"heads needs one entry per stage ({len(out.stages)})")
        for i, h in enumerate(heads):
            require((h == 0) == (out.stages[i].block == "mlp"), f"heads[{i}]: MLP-only stages take 0 heads, others > 0")
            out = out.with_stage(i, heads=h)
    return out
