"""Named reference architectures as ArchSpecs (the papers' configurations).

Each preset names the timm model it must equal in exact parameter count where
timm ships one (`TIMM_EQUIVALENT`); HiViT is checked against its paper (Table 7).
"""

from __future__ import annotations

from typing import Callable

from .spec import ArchSpec, Stage


def vit(dim: int, depth: int, heads: int, patch: int = 16, name: str = "") -> ArchSpec:
    """Plain ViT/DeiT: 16x16 patches, class token, learned absolute position embedding, LayerNorm eps 1e-6."""
    return ArchSpec(stages=(Stage(depth=depth, dim=dim, heads=heads, pos_embed=True),), patch_size=patch,
                    norm_eps=1e-6, name=name)


def swin(dim: int, depths: tuple[int, ...], heads: tuple[int, ...], window: int = 7, name: str = "") -> ArchSpec:
    """Swin: 4x4 stem + LayerNorm, shifted windows with relative position bias, patch merging, average pool."""
    stages = tuple(
        Stage(
            depth=d, dim=dim * 2**i, heads=h, attention="window", window=window, shift=True, rel_pos="bias",
            downsample="patch_merge" if i else "none",
        )
        for i, (d, h) in enumerate(zip(depths, heads))
    )
    return ArchSpec(
        stages=stages, patch_size=4, stem_norm=True, class_token=False, pool="avg", name=name
    )


def hivit(dim: int, depths: tuple[int, int, int], heads: int, name: str = "") -> ArchSpec:
    """HiViT: 4x4 stem, MLP-only stages at 56^2 and 28^2 (each paper 'module' is 2 MLP blocks, ratio 3),
    patch merging, then global attention with RPE and an absolute position embedding at 14^2."""
    low = tuple(
        Stage(depth=2 * d, dim=dim // 2 ** (2 - i), block="mlp", mlp_ratio=3.0, heads=0,
              downsample="patch_merge" if i else "none")
        for i, d in enumerate(depths[:2])
    )
    main = Stage(depth=depths[2], dim=dim, heads=heads, rel_pos="bias", pos_embed=True, downsample="patch_merge")
    return ArchSpec(stages=low + (main,), patch_size=4, stem_norm=True, class_token=False, pool="avg",
                    head_norm="pooled", name=name)


def mvitv2(dim: int, depths: tuple[int, ...], heads: int, expand: str, name: str = "") -> ArchSpec:
    """MViTv2: 7x7/4 stem, pooling attention with depthwise-conv Q/KV pooling (kernel 3, also at stride 1),
    adaptive KV strides 4-2-1-1, decomposed relative positions, residual pooling; widths and heads double."""
    stages = tuple(
        Stage(depth=d, dim=dim * 2**i, heads=heads * 2**i, rel_pos="decomposed", pool="conv", q_kernel=3,
              kv_kernel=3, kv_stride=max(4 // 2**i, 1), pool_stride1=True, residual_pooling=True,
              downsample="q_pool" if i else "none")
        for i, d in enumerate(depths)
    )
    return ArchSpec(stages=stages, patch_size=4, stem_kernel=7, class_token=False, pool="avg", norm_eps=1e-6,
                    channel_expand=expand, name=name)


def hiera(dim: int, depths: tuple[int, ...], heads: int, name: str = "") -> ArchSpec:
    """Hiera: 7x7/4 stem, absolute position embedding, mask-unit attention in stages 1-2 and global after,
    2x2 max Q pooling (kernel = stride) with a Linear widening the shortcut; widths and heads double."""
    stages = tuple(
        Stage(depth=d, dim=dim * 2**i, heads=heads * 2**i, attention="mask_unit" if i < 2 else "global",
              pool="max", q_kernel=2, pos_embed=i == 0, downsample="q_pool" if i else "none")
        for i, d in enumerate(depths)
    )
    return ArchSpec(stages=stages, patch_size=4, stem_kernel=7, class_token=False, pool="avg",
                    head_norm="pooled", norm_eps=1e-6, mask_unit=8, name=name)


PRESETS: dict[str, Callable[[], ArchSpec]] = {
    "vit_b16": lambda: vit(768, 12, 12, name="vit_b16"),
    "deit_ti": lambda: vit(192, 12, 3, name="deit_ti"),
    "deit_s": lambda: vit(384, 12, 6, name="deit_s"),
    "swin_t": lambda: swin(96, (2, 2, 6, 2), (3, 6, 12, 24), name="swin_t"),
    "swin_s": lambda: swin(96, (2, 2, 18, 2), (3, 6, 12, 24), name="swin_s"),
    "swin_b": lambda: swin(128, (2, 2, 18, 2), (4, 8, 16, 32), name="swin_b"),
    "hivit_t": lambda: hivit(384, (1, 1, 10), 6, name="hivit_t"),
    "hivit_s": lambda: hivit(384, (2, 2, 20), 6, name="hivit_s"),
    "hivit_b": lambda: hivit(512, (2, 2, 20), 8, name="hivit_b"),
    "mvitv2_b": lambda: mvitv2(96, (2, 3, 16, 3), 1, "attn", name="mvitv2_b"),
    "mvitv2_l": lambda: mvitv2(144, (2, 6, 36, 4), 2, "mlp", name="mvitv2_l"),
    "hiera_t": lambda: hiera(96, (1, 2, 7, 2), 1, name="hiera_t"),
    "hiera_s": lambda: hiera(96, (1, 2, 11, 2), 1, name="hiera_s"),
    "hiera_b": lambda: hiera(96, (2, 3, 16, 3), 1, name="hiera_b"),
    "hiera_b_plus": lambda: hiera(112, (2, 3, 16, 3), 2, name="hiera_b_plus"),
    "hiera_l": lambda: hiera(144, (2, 6, 36, 4), 2, name="hiera_l"),
    "hiera_h": lambda: hiera(256, (2, 6, 36, 4), 4, name="hiera_h"),
}

TIMM_EQUIVALENT: dict[str, str] = {
    "vit_b16": "vit_base_patch16_224",
    "deit_ti": "deit_tiny_patch16_224",
    "deit_s": "deit_small_patch16_224",
    "swin_t": "swin_tiny_patch4_window7_224",
    "swin_s": "swin_small_patch4_window7_224",
    "swin_b": "swin_base_patch4_window7_224",
    "mvitv2_b": "mvitv2_base",
    "mvitv2_l": "mvitv2_large",
    "hiera_t": "hiera_tiny_224",
    "hiera_s": "hiera_small_224",
    "hiera_b": "hiera_base_224",
    "hiera_b_plus": "hiera_base_plus_224",
    "hiera_l": "hiera_large_224",
    "hiera_h": "hiera_huge_224",
}


def preset(name: str) -> ArchSpec:
    """The preset `name`; KeyError lists the known names."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset '{name}'; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()
