"""ablab's state dicts to and from timm's key names, for the architectures timm ships (ViT / DeiT, Swin, MViTv2,
Hiera): the same tensors under other names (Hiera numbers its blocks across stages). A spec's timm twin is the
timm model whose architecture it equals (`timm_twin`), whatever step of a recipe it is."""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Optional

from ..arch.presets import PRESETS
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
