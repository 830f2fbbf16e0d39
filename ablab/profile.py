"""Profiles: the paper's exact scale, or a uniform shrink of every step for the CPU.

A shrink applies the same factors to every step's spec, so each step keeps its
meaning: widths and head counts scale together (head width is kept), depths
scale and round (at least 1 block), the image and every patch size scale so
each stage keeps its share of the grid, and windows keep their share of it.
Strides, pooling kernels and mask units (in tokens) are kept, so every pooling
step still pools; an overlapping stem keeps an odd kernel of its scaled size.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

from .spec import ArchSpec, SpecError, check
from .train.config import TrainConfig


@dataclass(frozen=True)
class Scale:
    img_size: int
    patch: float = 1.0  # patch-size factor: 16 -> 4 at 0.25
    width: float = 1.0
    depth: float = 1.0


@dataclass(frozen=True)
class Measure:
    batch_sizes: tuple[int, ...] = (1, 8)
    min_time: float = 1.0
    device: str = "auto"
    dtype: str = "auto"


@dataclass(frozen=True)
class Profile:
    name: str
    scale: Optional[Scale] = None
    num_classes: Optional[int] = None
    measure: Measure = Measure()
    train: TrainConfig = TrainConfig()
    seeds: tuple[int, ...] = ()  # training seeds `ablab run` uses when given no --seeds


def _round(x: float) -> int:
    return int(x + 0.5)


def apply_profile(spec: ArchSpec, profile: Profile) -> ArchSpec:
    """The spec at the profile's scale; SpecError if the shrunk spec cannot be built."""
    if profile.num_classes is not None:
        spec = dataclasses.replace(spec, num_classes=profile.num_classes)
    if profile.scale is None:
        return spec
    s = profile.scale
    patch = _round(spec.patch_size * s.patch)
    if patch < 1:
        raise SpecError(f"patch scale {s.patch} shrinks patch_size {spec.patch_size} below 1")
    stem_kernel = 0
    if spec.stem_kernel:  # the smallest odd kernel covering the scaled one, and at least the patch
        stem_kernel = max(patch + 1 - patch % 2, 2 * math.ceil((spec.stem_kernel * s.patch - 1) / 2) + 1)
    stages = tuple(
        dataclasses.replace(st, dim=_round(st.dim * s.width), heads=max(1, _round(st.heads * s.width)) if st.heads else 0,
                            depth=max(1, _round(st.depth * s.depth)))
        for st in spec.stages
    )
    new = dataclasses.replace(spec, img_size=s.img_size, patch_size=patch, stem_kernel=stem_kernel, stages=stages)
    for i, (old_side, new_side) in enumerate(zip(spec.grids(), new.grids())):
        st = new.stages[i]
        if st.window and old_side and new_side:  # windows keep their share of the grid
            new = new.with_stage(i, window=max(1, _round(st.window * new_side / old_side)))
    check(new)
    return new
