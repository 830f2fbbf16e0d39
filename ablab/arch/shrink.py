"""A profile's shrink of a spec: the paper's exact scale, or a uniform shrink of every step for the CPU.

A shrink applies the same factors to every step's spec, so each step keeps its meaning: widths and head counts
scale together (at least one head), depths scale and round (at least 1 block), the image and every patch size
scale so each stage keeps its share of the grid, and each attention kind keeps what it reads of the grid (windows
keep their share of it). A profile may give head counts a factor of their own (`heads`): per-head parameters
(MViTv2's pooling convs, relative position tables) grow with a head's width, so with heads shrunk like widths a
video MViTv2's 3x3x3 pools weigh far more in the shrunk model than at paper scale. A clip model takes the
profile's frames, if it names them, through the same temporal stem. Strides, pooling kernels and mask units (in
tokens) are kept, so every pooling step still pools; an overlapping stem keeps an odd kernel of its scaled size.
Linear weights start at init_std / sqrt(width factor): every fan-in shrinks by that factor, so std x
sqrt(fan-in), the scale of each layer's output at initialisation, stays the paper model's (at std 0.02 a 72-wide
proxy starts near-silent and its runs stall on a plateau for a seed-dependent time; see the README's proxy
section). A profile may also scale each block's
residual outputs by 1 / sqrt(2 x blocks) at initialisation (`depth_scaled_init`, GPT-2's): the 24-block MViTv2
and Hiera proxies otherwise leave the chance plateau at a seed-dependent time (docs/proxy.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from ..settings import Scale
from .spec import ArchSpec, SpecError, check


def _round(x: float) -> int:
    return int(x + 0.5)


def shrink(spec: ArchSpec, scale: Optional[Scale], num_classes: Optional[int] = None) -> ArchSpec:
    """The spec at a profile's scale (and class count); SpecError if the shrunk spec cannot be built."""
    if num_classes is not None:
        spec = dataclasses.replace(spec, num_classes=num_classes)
    if scale is None:
        return spec
    patch = _round(spec.patch_size * scale.patch)
    if patch < 1:
        raise SpecError([f"patch scale {scale.patch} shrinks patch_size {spec.patch_size} below 1"])
    stem_kernel = 0
    if spec.stem_kernel:  # the smallest odd kernel covering the scaled one, and at least the patch
        stem_kernel = max(patch + 1 - patch % 2, 2 * math.ceil((spec.stem_kernel * scale.patch - 1) / 2) + 1)
    heads = scale.width if scale.heads is None else scale.heads
    stages = tuple(
        dataclasses.replace(st, dim=_round(st.dim * scale.width),
                            heads=max(1, _round(st.heads * heads)) if st.heads else 0,
                            depth=max(1, _round(st.depth * scale.depth)))
        for st in spec.stages
    )
    if scale.frames is not None and spec.frames == 1:
        raise SpecError([f"scale frames {scale.frames}: the model takes images (frames 1)"])
    new = dataclasses.replace(spec, img_size=scale.img_size, patch_size=patch, stem_kernel=stem_kernel, stages=stages,
                              init_std=spec.init_std / math.sqrt(scale.width), frames=scale.frames or spec.frames,
                              depth_scaled_init=scale.depth_scaled_init or spec.depth_scaled_init)
    for old_ctx, ctx in zip(spec.contexts(), new.contexts()):
        if old_ctx.side and ctx.side:
            changes = ctx.attention.shrink(ctx.stage, old_ctx.side, ctx.side)
            if changes:
                new = new.with_stage(ctx.index, **changes)
    check(new)
    return new
