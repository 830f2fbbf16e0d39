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
import re
from dataclasses import dataclass
from typing import Literal, Optional

from .spec import ArchSpec, SpecError, check
from .train.config import TrainConfig


@dataclass(frozen=True)
class Scale:
    img_size: int
    patch: float = 1.0  # patch-size factor: 16 -> 4 at 0.25
    width: float = 1.0
    depth: float = 1.0


COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class Measure:
    """How throughput is measured: eval mode, no grad, `warmup` forwards, then timed for `min_time` seconds at
    every batch size of the sweep; the best batch is reported. `amp: auto` is fp16 autocast on CUDA (the
    papers' practice) and fp32 on the CPU; fp16 / bf16 autocast needs CUDA."""

    batch_sizes: tuple[int, ...] = (1, 8)  # the sweep on the CPU, and on CUDA unless cuda_batch_sizes is given
    cuda_batch_sizes: tuple[int, ...] = ()  # the sweep on CUDA, where batches that fill the GPU are fastest
    min_time: float = 1.0
    warmup: int = 3  # untimed forwards per batch size (torch.compile compiles in the first, CUDA graphs record later)
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N
    amp: Literal["auto", "none", "fp16", "bf16"] = "auto"
    channels_last: bool = False  # model and input in channels_last memory format
    compile: Literal[COMPILE_MODES] = "none"  # torch.compile mode, or none

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every value out of range or in conflict, so recipes report them with their lines."""
        out = []
        for name in ("batch_sizes", "cuda_batch_sizes"):
            sizes = getattr(self, name)
            if any(b < 1 for b in sizes) or len(set(sizes)) != len(sizes):
                out.append((name, f"distinct batch sizes of at least 1 are required, got {list(sizes)}"))
        if not self.batch_sizes:
            out.append(("batch_sizes", "at least one batch size is required"))
        if self.min_time <= 0:
            out.append(("min_time", f"must be positive, got {self.min_time}"))
        if self.warmup < 1:
            out.append(("warmup", f"at least 1 warm-up forward is required, got {self.warmup}"))
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            out.append(("device", f"auto, cpu, cuda or cuda:N is required, got '{self.device}'"))
        if self.device == "cpu" and self.amp in ("fp16", "bf16"):
            out.append(("amp", f"{self.amp} autocast is measured on CUDA only; the CPU measures fp32 "
                               "(amp: auto is fp16 on CUDA and fp32 on the CPU)"))
        return out


def setting_label(device: str, dtype: str, compile: str = "none", channels_last: object = False) -> str:
    """How a throughput figure was measured, in words, e.g. 'NVIDIA H100 80GB HBM3, fp16, channels_last'
    ('' for an unmeasured step): figures with different labels come from different machines or settings."""
    if not device:
        return ""
    parts = [device, dtype or "dtype not recorded"]
    if compile and compile != "none":
        parts.append(f"compiled ({compile})")
    if str(channels_last) == "True":
        parts.append("channels_last")
    return ", ".join(parts)


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
