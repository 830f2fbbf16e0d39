"""ablab's state dicts to and from timm's key names, for the architectures timm ships (ViT / DeiT, Swin, MViTv2,
Hiera): the same tensors under other names (Hiera numbers its blocks across stages). A spec's timm twin is the
timm model whose architecture it equals (`timm_twin`), whatever step of a recipe it is."""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Optional

from ..arch.presets import PRESETS, hiera, swin, vit
from ..arch.spec import ArchSpec, canonical

Renames = list[tuple[str, str]]  # (regex, replacement), applied in order
FAMILIES: dict[str, Renames] = {  # ours -> timm
    "vit": [(r"^stages\.0\.(cls_token|pos_embed)$", r"\1"), (r"^stages\.0\.blocks\.", "blocks.")],
    "swin": [(r"^stages\.(\d+)\.", r"layers.\1."), (r"attn\.rel_pos\.table", "attn.relative_position_bias_table"),
             (r"^head\.", "head.fc.")],
    "mvit": [(r"attn\.pool_([qkv])\.op\.", r"attn.pool_\1."), (r"attn\.pool_([qkv])\.norm\.", r"attn.norm_\1."),
             (r"attn\.rel_pos\.rel_pos_", "attn.rel_pos_"), (r"^head\.", "head.fc.")],
    "hiera": [(r"^stages\.0\.pos_embed$", "pos_embed"), (r"^(blocks\.\d+)\.shortcut_proj_attn\.", r"\1.proj."),
              (r"^norm\.", "head.norm."), (r"^head\.(weight|bias)$", r"head.fc.\1")],
}
INVERSE: dict[str, Renames] = {  # timm -> ours
    "vit": [(r"^(cls_token|pos_embed)$", r"stages.0.\1"), (r"^blocks\.", "stages.0.blocks.")],
    "swin": [(r"^layers\.(\d+)\.", r"stages.\1."), (r"attn\.relative_position_bias_table", "attn.rel_pos.table"),
             (r"^head\.fc\.", "head.")],
    "mvit": [(r"attn\.pool_([qkv])\.", r"attn.pool_\1.op."), (r"attn\.norm_([qkv])\.", r"attn.pool_\1.norm."),
             (r"attn\.rel_pos_", "attn.rel_pos.rel_pos_"), (r"^head\.fc\.", "head.")],
    "hiera": [(r"^pos_embed$", "stages.0.pos_embed"), (r"^(blocks\.\d+)\.proj\.", r"\1.shortcut_proj_attn."),
              (r"^head\.norm\.", "norm."), (r"^head\.fc\.", "head.")],
}
FAMILY_OF = {"vit": "vit", "deit": "vit", "swin": "swin", "mvitv2": "mvit", "hiera": "hiera"}


def timm_twin(spec: ArchSpec) -> Optional[tuple[str, str]]:
    """(timm model name, family) of the timm model with `spec`'s architecture (any class count), or None."""
    mine = canonical(dataclasses.replace(spec, num_classes=1000, drop_path=0.0))
    for name, preset in PRESETS.items():
        if preset.timm and canonical(preset.spec()) == mine:
            return preset.timm, FAMILY_OF[name.split("_")[0]]
    return None


def _free(spec: ArchSpec) -> ArchSpec:
    """`spec` up to what timm takes from the caller anyway (input size, class count, drop path) and what does not
    change the function a model computes (its initialisation)."""
    return canonical(dataclasses.replace(spec, img_size=224, num_classes=1000, drop_path=0.0, init_std=0.02,
                                         depth_scaled_init=False))


def _vit_kwargs(spec: ArchSpec) -> tuple[dict, ArchSpec]:
    s = spec.stages[0]
    return (dict(patch_size=spec.patch_size, embed_dim=s.dim, depth=s.depth, num_heads=s.heads),
            vit(s.dim, s.depth, s.heads, spec.patch_size))


def _swin_kwargs(spec: ArchSpec) -> tuple[dict, ArchSpec]:
    depths, heads = tuple(s.depth for s in spec.stages), tuple(s.heads for s in spec.stages)
    dim, window = spec.stages[0].dim, spec.stages[0].window
    return (dict(patch_size=spec.patch_size, window_size=window, embed_dim=dim, depths=depths, num_heads=heads),
            dataclasses.replace(swin(dim, depths, heads, window), patch_size=spec.patch_size))


def _hiera_kwargs(spec: ArchSpec) -> tuple[dict, ArchSpec]:
    depths, first = tuple(s.depth for s in spec.stages), spec.stages[0]
    k, p = spec.stem_kernel, spec.patch_size
    like = dataclasses.replace(hiera(first.dim, depths, first.heads), patch_size=p, stem_kernel=k,
                               mask_unit=spec.mask_unit)
    return (dict(embed_dim=first.dim, num_heads=first.heads, stages=depths, patch_kernel=(k, k), patch_stride=(p, p),
                 patch_padding=((k - 1) // 2,) * 2, mask_unit_size=(spec.mask_unit,) * 2), like)


# family -> (a timm model of it, whose builder takes the keyword arguments; kwargs of a spec and the spec they give)
KWARGS = {"vit": ("vit_base_patch16_224", _vit_kwargs), "swin": ("swin_base_patch4_window7_224", _swin_kwargs),
          "hiera": ("hiera_base_224", _hiera_kwargs)}


def timm_model(spec: ArchSpec) -> Optional[tuple[str, str, dict]]:
    """(timm model name, family, keyword arguments) that build `spec`'s architecture in timm, shrunk or not: the
    exact twin's name with no arguments, else a family's model with its sizes as arguments; None where timm has
    none (MViTv2's sizes are a config object in timm, so only its presets qualify)."""
    twin = timm_twin(spec)
    if twin is not None:
        return twin[0], twin[1], {}
    mine = _free(spec)
    for family, (name, kwargs_of) in KWARGS.items():
        try:
            kwargs, like = kwargs_of(spec)
            if _free(like) == mine:
                return name, family, kwargs
        except (ValueError, TypeError):  # the spec is no point of this family (e.g. no window to read)
            continue
    return None


def timm_family(spec: ArchSpec) -> Optional[str]:
    """The timm family whose key names `spec`'s model shares (its exact twin's, else that of the preset it differs
    from in input size, class count or drop path only: a checkpoint at another resolution), or None."""
    twin = timm_twin(spec)
    if twin is not None:
        return twin[1]
    for name, preset in PRESETS.items():
        ref = preset.spec()
        if preset.timm and len(ref.stages) == len(spec.stages) and all(
                (a.depth, a.dim, a.heads, a.block, a.attention) == (b.depth, b.dim, b.heads, b.block, b.attention)
                for a, b in zip(ref.stages, spec.stages)):
            return FAMILY_OF[name.split("_")[0]]
    return None


def _renamed(state: dict, renames: Renames, key_map: Callable[[str], str] = lambda k: k) -> dict:
    out = {}
    for key, value in state.items():
        key = key_map(key)
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def to_timm(state: dict, spec: ArchSpec, family: str) -> dict:
    """Our state dict of `spec`'s model under timm's key names for `family`."""
    depths = [st.depth for st in spec.stages]

    def global_blocks(key: str) -> str:  # Hiera: stages.i.blocks.j -> blocks.(depths before i + j)
        m = re.match(r"^stages\.(\d+)\.blocks\.(\d+)\.(.*)$", key)
        return f"blocks.{sum(depths[:int(m.group(1))]) + int(m.group(2))}.{m.group(3)}" if m else key

    return _renamed(state, FAMILIES[family], global_blocks if family == "hiera" else lambda k: k)


def from_timm(state: dict, spec: ArchSpec, family: str) -> dict:
    """timm's state dict of `family` under our key names for `spec`'s model."""
    depths = [st.depth for st in spec.stages]
    ends = [sum(depths[:i + 1]) for i in range(len(depths))]

    def staged_blocks(key: str) -> str:  # Hiera: blocks.n -> stages.i.blocks.(n - depths before i)
        m = re.match(r"^blocks\.(\d+)\.(.*)$", key)
        if not m:
            return key
        n = int(m.group(1))
        stage = next(i for i, end in enumerate(ends) if n < end)
        return f"stages.{stage}.blocks.{n - (ends[stage - 1] if stage else 0)}.{m.group(2)}"

    renamed = _renamed(state, INVERSE[family])
    return {staged_blocks(k): v for k, v in renamed.items()} if family == "hiera" else renamed


# what only pre-training has, left out when a released pre-training checkpoint initialises a step: MAE's and Hiera's
# decoders, mask tokens and Hiera's multi-scale fusion heads and encoder norm
PRETRAINING_ONLY = ("decoder", "mask_token", "multi_scale_fusion_heads", "encoder_norm")
OFFICIAL: dict[str, Renames] = {  # the papers' released checkpoints -> timm's names
    "vit": [],  # MAE (facebookresearch/mae) saves timm's ViT
    "swin": [(r"^head\.(weight|bias)$", r"head.fc.\1")],  # microsoft/Swin-Transformer; merging moved below
    "hiera": [(r"^head\.projection\.", "head.fc."), (r"^norm\.", "head.norm.")],  # facebookresearch/hiera
}


def from_official(state: dict, family: str) -> tuple[dict, list[str]]:
    """A checkpoint the paper's own code released (MAE's ViT, Swin, Hiera; fine-tuned or pre-trained) under timm's
    key names, and the pre-training keys left out. Swin's code merges patches at the end of a stage, timm's at the
    start of the next. ValueError for a family with no official format here."""
    if family not in OFFICIAL:
        raise ValueError(f"no official checkpoint format for {family}; its timm checkpoints load with format: timm")
    dropped = sorted(k for k in state if k.startswith(PRETRAINING_ONLY))
    kept = {k: v for k, v in state.items() if k not in dropped}
    if family == "swin":
        kept = {re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) + 1}.downsample.", k): v
                for k, v in kept.items()}
    return _renamed(kept, OFFICIAL[family]), dropped
