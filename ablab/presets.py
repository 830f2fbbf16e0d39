"""Named reference architectures as ArchSpecs (the papers' configurations).

Each preset names the timm model it must equal in exact parameter count where
timm ships one (`TIMM_EQUIVALENT`); HiViT is checked against its paper (Table 7).
"""

from __future__ import annotations

from typing import Callable

from .spec import ArchSpec, Stage


def vit(dim: int, depth: int, heads: int, patch: int = 16, name: str = "") -> ArchSpec:
    """Plain ViT/DeiT: 16x16 patches, class token, learned absolute position embedding, LayerNorm eps 1e-6."""
    return ArchSpec(stages=(Stage(depth=depth, dim=dim, heads=heads),), patch_size=patch, norm_eps=1e-6, name=name)


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
        stages=stages, patch_size=4, stem_norm=True, class_token=False, pos_embed="none", pool="avg", name=name
    )


def hivit(dim: int, depths: tuple[int, int, int], heads: int, name: str = "") -> ArchSpec:
    """HiViT: 4x4 stem, MLP-only stages at 56^2 and 28^2 (each paper 'module' is 2 MLP blocks, ratio 3),
    patch merging, then global attention with RPE and an absolute position embedding at 14^2."""
    low = tuple(
        Stage(depth=2 * d, dim=dim // 2 ** (2 - i), block="mlp", mlp_ratio=3.0, heads=0,
              downsample="patch_merge" if i else "none")
        for i, d in enumerate(depths[:2])
    )
    main = Stage(depth=depths[2], dim=dim, heads=heads, rel_pos="bias", downsample="patch_merge")
    return ArchSpec(
        stages=low + (main,), patch_size=4, stem_norm=True, class_token=False, pos_embed="learned",
        pos_embed_stage=2, pool="avg", name=name,
    )


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
}

TIMM_EQUIVALENT: dict[str, str] = {
    "vit_b16": "vit_base_patch16_224",
    "deit_ti": "deit_tiny_patch16_224",
    "deit_s": "deit_small_patch16_224",
    "swin_t": "swin_tiny_patch4_window7_224",
    "swin_s": "swin_small_patch4_window7_224",
    "swin_b": "swin_base_patch4_window7_224",
}


def preset(name: str) -> ArchSpec:
    """The preset `name`; KeyError lists the known names."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset '{name}'; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()
