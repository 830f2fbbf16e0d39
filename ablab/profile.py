"""Profiles: the paper's exact scale, or a uniform shrink of every step for the CPU.

A shrink applies the same factors to every step's spec, so each step keeps its
meaning: widths and head counts scale together (head width is kept), depths
scale and round (at least 1 block), the image and every patch size scale so
each stage keeps its share of the grid, and windows keep their share of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from .spec import ArchSpec, SpecError, check


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
    old_grids = spec.grids()
    new = dataclasses.replace(spec, img_size=s.img_size, patch_size=patch)
    side = s.img_size // patch
    stages = []
    for st, old_grid in zip(spec.stages, old_grids):
        if st.downsample == "patch_merge":
            side //= 2
        heads = max(1, _round(st.heads * s.width)) if st.heads else 0
        dim = _round(st.dim * s.width)
        window = max(1, _round(st.window * side / old_grid)) if st.window else 0
        stages.append(dataclasses.replace(st, dim=dim, heads=heads, depth=max(1, _round(st.depth * s.depth)),
                                          window=window))
    new = dataclasses.replace(new, stages=tuple(stages))
    check(new)
    return new
