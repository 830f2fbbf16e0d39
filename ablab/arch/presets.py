"""Named reference architectures as ArchSpecs (the papers' configurations), each declared with its timm twin.

`@preset(name, timm=...)` registers a function returning the spec; where timm ships the same model, the twin's
name sits beside it and the tests hold the two equal in exact parameter count and in outputs with mapped weights.
HiViT has no timm twin and is checked against its paper (Table 7).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

from .spec import ArchSpec, Stage


@dataclass(frozen=True)
class Preset:
    name: str
    make: Callable[[], ArchSpec]
    timm: Optional[str] = None  # timm's model of the same architecture, if it has one

    def spec(self) -> ArchSpec:
        return replace(self.make(), name=self.name)


PRESETS: dict[str, Preset] = {}


def preset(name: str, timm: Optional[str] = None) -> Callable[[Callable[[], ArchSpec]], Callable[[], ArchSpec]]:
    """Register `fn() -> ArchSpec` as preset `name`, with the name of its timm twin."""

    def register(fn: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
        PRESETS[name] = Preset(name, fn, timm)
        return fn

    return register


def preset_spec(name: str) -> ArchSpec:
    """The spec of preset `name`; KeyError lists the known names."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset '{name}'; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name].spec()


def timm_twins() -> dict[str, str]:
    """Preset name -> timm model name, for the presets that have a twin."""
    return {name: p.timm for name, p in PRESETS.items() if p.timm}


# ---- families ---------------------------------------------------------------


def vit(dim: int, depth: int, heads: int, patch: int = 16) -> ArchSpec:
    """Plain ViT/DeiT: 16x16 patches, class token, learned absolute position embedding, LayerNorm eps 1e-6."""
    return ArchSpec(stages=(Stage(depth=depth, dim=dim, heads=heads, pos_embed=True),), patch_size=patch,
                    norm_eps=1e-6)


def swin(dim: int, depths: tuple[int, ...], heads: tuple[int, ...], window: int = 7) -> ArchSpec:
    """Swin: 4x4 stem + LayerNorm, shifted windows with relative position bias, patch merging, average pool."""
    stages = tuple(
        Stage(depth=d, dim=dim * 2**i, heads=h, attention="window", window=window, shift=True, rel_pos="bias",
              downsample="patch_merge" if i else "none")
        for i, (d, h) in enumerate(zip(depths, heads))
    )
    return ArchSpec(stages=stages, patch_size=4, stem_norm=True, class_token=False, pool="avg")


def hivit(dim: int, depths: tuple[int, int, int], heads: int) -> ArchSpec:
    """HiViT: 4x4 stem, MLP-only stages at 56^2 and 28^2 (each paper 'module' is 2 MLP blocks, ratio 3),
    patch merging, then global attention with RPE and an absolute position embedding at 14^2."""
    low = tuple(
        Stage(depth=2 * d, dim=dim // 2 ** (2 - i), block="mlp", mlp_ratio=3.0, heads=0,
              downsample="patch_merge" if i else "none")
        for i, d in enumerate(depths[:2])
    )
    main = Stage(depth=depths[2], dim=dim, heads=heads, rel_pos="bias", pos_embed=True, downsample="patch_merge")
    return ArchSpec(stages=low + (main,), patch_size=4, stem_norm=True, class_token=False, pool="avg",
                    head_norm="pooled")


def mvitv2(dim: int, depths: tuple[int, ...], heads: int, expand: str) -> ArchSpec:
    """MViTv2: 7x7/4 stem, pooling attention with depthwise-conv Q/KV pooling (kernel 3, also at stride 1),
    adaptive KV strides 4-2-1-1, decomposed relative positions, residual pooling; widths and heads double."""
    stages = tuple(
        Stage(depth=d, dim=dim * 2**i, heads=heads * 2**i, rel_pos="decomposed", pool="conv", q_kernel=3,
              kv_kernel=3, kv_stride=max(4 // 2**i, 1), pool_stride1=True, residual_pooling=True,
              downsample="q_pool" if i else "none")
        for i, d in enumerate(depths)
    )
    return ArchSpec(stages=stages, patch_size=4, stem_kernel=7, class_token=False, pool="avg", norm_eps=1e-6,
                    channel_expand=expand)


def hiera(dim: int, depths: tuple[int, ...], heads: int) -> ArchSpec:
    """Hiera: 7x7/4 stem, absolute position embedding, mask-unit attention in stages 1-2 and global after,
    2x2 max Q pooling (kernel = stride) with a Linear widening the shortcut; widths and heads double."""
    stages = tuple(
        Stage(depth=d, dim=dim * 2**i, heads=heads * 2**i, attention="mask_unit" if i < 2 else "global",
              pool="max", q_kernel=2, pos_embed=i == 0, downsample="q_pool" if i else "none")
        for i, d in enumerate(depths)
    )
    return ArchSpec(stages=stages, patch_size=4, stem_kernel=7, class_token=False, pool="avg",
                    head_norm="pooled", norm_eps=1e-6, mask_unit=8)


# ---- the presets --------------------------------------------------------------


@preset("vit_b16", timm="vit_base_patch16_224")
def vit_b16() -> ArchSpec:
    return vit(768, 12, 12)


@preset("deit_ti", timm="deit_tiny_patch16_224")
def deit_ti() -> ArchSpec:
    return vit(192, 12, 3)


@preset("deit_s", timm="deit_small_patch16_224")
def deit_s() -> ArchSpec:
    return vit(384, 12, 6)


@preset("swin_t", timm="swin_tiny_patch4_window7_224")
def swin_t() -> ArchSpec:
    return swin(96, (2, 2, 6, 2), (3, 6, 12, 24))


@preset("swin_s", timm="swin_small_patch4_window7_224")
def swin_s() -> ArchSpec:
    return swin(96, (2, 2, 18, 2), (3, 6, 12, 24))


@preset("swin_b", timm="swin_base_patch4_window7_224")
def swin_b() -> ArchSpec:
    return swin(128, (2, 2, 18, 2), (4, 8, 16, 32))


@preset("hivit_t")
def hivit_t() -> ArchSpec:
    return hivit(384, (1, 1, 10), 6)


@preset("hivit_s")
def hivit_s() -> ArchSpec:
    return hivit(384, (2, 2, 20), 6)


@preset("hivit_b")
def hivit_b() -> ArchSpec:
    return hivit(512, (2, 2, 20), 8)


@preset("hivit_l")
def hivit_l() -> ArchSpec:
    return hivit(768, (4, 4, 36), 12)


@preset("mvitv2_b", timm="mvitv2_base")
def mvitv2_b() -> ArchSpec:
    return mvitv2(96, (2, 3, 16, 3), 1, "attn")


@preset("mvitv2_l", timm="mvitv2_large")
def mvitv2_l() -> ArchSpec:
    return mvitv2(144, (2, 6, 36, 4), 2, "mlp")


@preset("hiera_t", timm="hiera_tiny_224")
def hiera_t() -> ArchSpec:
    return hiera(96, (1, 2, 7, 2), 1)


@preset("hiera_s", timm="hiera_small_224")
def hiera_s() -> ArchSpec:
    return hiera(96, (1, 2, 11, 2), 1)


@preset("hiera_b", timm="hiera_base_224")
def hiera_b() -> ArchSpec:
    return hiera(96, (2, 3, 16, 3), 1)


@preset("hiera_b_plus", timm="hiera_base_plus_224")
def hiera_b_plus() -> ArchSpec:
    return hiera(112, (2, 3, 16, 3), 2)


@preset("hiera_l", timm="hiera_large_224")
def hiera_l() -> ArchSpec:
    return hiera(144, (2, 6, 36, 4), 2)


@preset("hiera_h", timm="hiera_huge_224")
def hiera_h() -> ArchSpec:
    return hiera(256, (2, 6, 36, 4), 4)


# ---- video (clips of 16 frames at 224 px) ------------------------------------------


def hiera_video(dim: int, depths: tuple[int, ...], heads: int) -> ArchSpec:
    """Hiera's video models (the official code's hiera_*_16x224): 16 frames, a 3x7x7 stem of stride 2x4x4 (8 x 56 x 56
    tokens), mask units of 1x8x8 tokens and Q pooling over space only, separate space and time position
    embeddings, Kinetics-400's 400 classes."""
    return replace(hiera(dim, depths, heads), frames=16, patch_t=2, stem_kernel_t=3, sep_pos_embed=True,
                   num_classes=400)


@preset("mvitv2_l_16x224")
def mvitv2_l_16x224() -> ArchSpec:
    """MViTv2-L for 16 x 224^2 clips, Hiera Table 1's video base (MaskFeat's configuration: 218M, 377 GFLOPs): the
    image model with a 3x7x7 stem of stride 2x4x4, 3x3x3 Q/KV pools, temporal relative positions and the KV strides
    doubled (8-4-2-1). SlowFast's configuration also carries a class token beside the averaged tokens; ours
    averages the tokens alone (144 parameters fewer)."""
    spec = mvitv2(144, (2, 6, 36, 4), 2, "mlp")
    stages = tuple(replace(st, kv_stride=max(8 // 2**i, 1)) for i, st in enumerate(spec.stages))
    return replace(spec, stages=stages, frames=16, patch_t=2, stem_kernel_t=3, pool_kernel_t=3, num_classes=400)


@preset("hiera_b_16x224")
def hiera_b_16x224() -> ArchSpec:
    return hiera_video(96, (2, 3, 16, 3), 1)


@preset("hiera_b_plus_16x224")
def hiera_b_plus_16x224() -> ArchSpec:
    return hiera_video(112, (2, 3, 16, 3), 2)


@preset("hiera_l_16x224")
def hiera_l_16x224() -> ArchSpec:
    return hiera_video(144, (2, 6, 36, 4), 2)


@preset("hiera_h_16x224")
def hiera_h_16x224() -> ArchSpec:
    return hiera_video(256, (2, 6, 36, 4), 4)
