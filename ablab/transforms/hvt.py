"""HVT's hierarchical pooling of DeiT (HVT Section 3.2, Tables 1-6), one change per step."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ..arch.spec import ArchSpec, Stage
from .registry import require, transform

POOLS = {"1d": "token_pool", "2d": "grid_pool"}  # hierarchical_pooling's layout -> downsample kind


@transform(paper="HVT Table 2: prediction without the class token")
def remove_class_token(spec: ArchSpec) -> ArchSpec:
    """Drop the class token: predict from the average of all tokens (the position embedding loses its slot)."""
    require(spec.class_token, "the model has no class token")
    return dataclasses.replace(spec, class_token=False, pool="avg")


@transform(paper="HVT Tables 1, 3, 4: HVT-M (hierarchical pooling with M stages); Table 9: 2D pooling")
def hierarchical_pooling(spec: ArchSpec, stages: int = 1, op: Literal["max", "avg", "conv"] = "max",
                         kernel: int = 3, layout: Literal["1d", "2d"] = "1d") -> ArchSpec:
    """Split a plain ViT's blocks into 1 + M stages; each new stage starts with a pool (stride 2) over the
    tokens, 1D over the sequence or 2D over the grid (`layout`), and its own learned position embedding.

    As in HVT's code, with w = depth / M, pooling follows block 0, w, 2w, ...: DeiT-S with M = 4 runs
    blocks of 196, 97 x3, 48 x3, 23 x3 and 11 x2 tokens; 2D pooling of 8 px patches (Table 9, M = 2) runs
    28x28, 14x14 x6 and 7x7 x5.
    """
    require(len(spec.stages) == 1 and spec.stages[0].block == "attention" and not spec.stages[0].multiscale,
            "hierarchical_pooling needs a plain ViT (one stage of global attention)")
    require(not spec.class_token, "remove the class token first: HVT predicts by average pooling")
    st = spec.stages[0]
    require(stages >= 1 and st.depth % stages == 0, f"M = {stages} must divide the depth {st.depth}")
    require(st.rel_pos == "none" and st.attention == "global", "pooled stages take global attention without RPE")
    require(layout in POOLS, f"layout is '1d' or '2d', got {layout!r}")
    require(layout == "1d" or op != "conv", "2D pooling is max or avg")
    w = st.depth // stages
    depths = [1] + [w] * (stages - 1) + [w - 1]
    new = [dataclasses.replace(st, depth=depths[0])]
    new += [Stage(depth=d, dim=st.dim, heads=st.heads, mlp_ratio=st.mlp_ratio, pos_embed=True,
                  downsample=POOLS[layout], pool=op, q_kernel=kernel) for d in depths[1:]]
    return dataclasses.replace(spec, stages=tuple(new))


@transform(paper="HVT Table 1 'Scale', Table 6: scale width and heads")
def scale_width(spec: ArchSpec, dim: int = 384, heads: int = 6) -> ArchSpec:
    """Set the width and heads of every stage of a single-width model (Scale HVT-Ti-4: 192/3 -> 384/6)."""
    require(len({st.dim for st in spec.stages}) == 1, "scale_width needs one width across stages")
    require(all(st.block == "attention" for st in spec.stages), "every stage must be an attention stage")
    require(dim > 0 and heads > 0 and dim % heads == 0, f"dim {dim} must be divisible by heads {heads}")
    require((dim, heads) != (spec.stages[0].dim, spec.stages[0].heads), "width and heads are already these")
    return dataclasses.replace(spec, stages=tuple(dataclasses.replace(st, dim=dim, heads=heads) for st in spec.stages))


@transform(paper="HVT Table 5: scale depth")
def scale_depth(spec: ArchSpec, depth: int = 16) -> ArchSpec:
    """Set the total depth of an HVT (or plain ViT), keeping its number of pooling stages M."""
    pooled = [st for st in spec.stages if st.downsample in POOLS.values()]
    require(len(pooled) + 1 == len(spec.stages), "scale_depth needs a plain ViT or an HVT")
    m = len(pooled)
    if m == 0:
        return spec.with_stage(0, depth=depth)
    require(depth % m == 0, f"M = {m} must divide the depth {depth}")
    w = depth // m
    depths = [1] + [w] * (m - 1) + [w - 1]
    return dataclasses.replace(
        spec, stages=tuple(dataclasses.replace(st, depth=d) for st, d in zip(spec.stages, depths)))
