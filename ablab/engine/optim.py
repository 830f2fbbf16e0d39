"""AdamW parameter groups: no weight decay on biases, norms, position tables and tokens; layer-wise lr decay."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

NO_DECAY = ("pos_embed", "cls_token", ".table", "rel_pos_h", "rel_pos_w")


def param_groups(model: nn.Module, weight_decay: float, layer_decay: Optional[float] = None,
                 lr_scales: Optional[dict[str, float]] = None) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases, norms, position embeddings, class tokens and relative position
    tables; with `layer_decay`, each group's `lr_scale` is decay ** (depth - layer), so early layers move least
    (the fine-tuning rule of BEiT, MAE, SimMIM, Hiera and HiViT); `lr_scales` {name prefix: factor} multiplies it
    for the parameters under that prefix (a fresh head over a trained backbone)."""
    layers = layer_ids(model) if layer_decay is not None else {}
    depth = max(layers.values(), default=0)
    groups: dict[tuple[bool, int, float], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name.endswith(NO_DECAY)
        layer = layers.get(name, depth)
        scale = next((f for prefix, f in (lr_scales or {}).items() if name.startswith(prefix)), 1.0)
        group = groups.setdefault((no_decay, layer, scale), {
            "params": [], "weight_decay": 0.0 if no_decay else weight_decay,
            "lr_scale": scale * (1.0 if layer_decay is None else layer_decay ** (depth - layer))})
        group["params"].append(p)
    return list(groups.values())


def layer_ids(model: nn.Module) -> dict[str, int]:
    """Layer of every parameter of a built Net: stem 0, the k-th block over all stages k; a stage's downsampling,
    class token and position embedding share its first block's layer; final norm and head one past the last."""
    ids = {f"patch_embed.{n}": 0 for n, _ in model.patch_embed.named_parameters()}
    first = 1
    for i, stage in enumerate(model.stages):
        for n, _ in stage.named_parameters():
            block = int(n.split(".")[1]) if n.startswith("blocks.") else 0
            ids[f"stages.{i}.{n}"] = first + block
        first += len(stage.blocks)
    ids.update({n: first for n, _ in model.named_parameters() if n not in ids})
    return ids
