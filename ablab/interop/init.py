"""A step initialised from a checkpoint on disk: timm's state dicts (ViT / DeiT, Swin, MViTv2, Hiera, by the spec's
timm family), the papers' released ones (`official`: MAE's ViT, Swin's, Hiera's, fine-tuned or pre-trained) or
ablab's own (a run's checkpoint.pt or a pre-training's encoder.pt), mapped onto the step's model.

What does not fit as it is, is reported: an absolute position embedding of another grid is interpolated (bicubic,
class tokens kept), Swin's relative position tables of another window resized, a classifier of another class
count left at its initialisation, and a pre-training checkpoint's decoder left out (with the final norm it lacks left at
initialisation, as MAE's and Hiera's fine-tuning code leaves it). Anything else -- a parameter of ours the checkpoint lacks, a tensor of the
checkpoint no parameter takes, a shape that cannot be made to fit -- refuses the whole mapping with every key."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..arch.build import Net
from .timm import from_official, from_timm, timm_family

Format = Literal["timm", "official", "ablab"]


class InitError(ValueError):
    """The checkpoint cannot be mapped onto the model; the message lists every key that does not fit."""


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint holds (safetensors, or torch.load with weights_only), unwrapped from the usual
    {'model': ...} / {'model_state': ...} / {'state_dict': ...} / ablab's checksummed file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    from ..io import MAGIC, load_checkpoint

    with path.open("rb") as f:
        ours = f.read(len(MAGIC)) == MAGIC
    state: Any = load_checkpoint(path) if ours else torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "model_state", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InitError(f"{path}: not a state dict of tensors")
    return state


def initialise(model: Net, path: Path, fmt: Format = "timm") -> dict[str, list[str]]:
    """Load `path` into `model` in place; returns the report {'interpolated': [...], 'resized': [...],
    'left_at_init': [...], 'dropped': [...]} of keys that did not load as they were. InitError lists every key that
    does not fit."""
    spec = model.spec
    state, dropped = read_state(path), []
    if fmt in ("timm", "official"):
        family = timm_family(spec)
        if family is None:
            raise InitError(f"{path}: timm has no family of this step's architecture (ViT, DeiT, Swin, MViTv2, Hiera)")
        if fmt == "official":
            try:
                state, dropped = from_official(state, family)
            except ValueError as e:
                raise InitError(f"{path}: {e}") from None
        state = from_timm(state, spec, family)
    unset = ("head.", "norm.") if dropped else ("head.",)  # what a pre-training checkpoint lacks
    return {**fit_state(model, state, str(path), unset), "dropped": dropped}


def fit_state(model: Net, state: dict[str, torch.Tensor], where: str,
              unset: tuple[str, ...] = ("head.",)) -> dict[str, list[str]]:
    """Load `state` (our key names) into `model` in place, the same architecture at another input size or class
    count: position embeddings interpolated, relative position tables resized, keys under `unset` prefixes the state
    lacks or shapes otherwise left at initialisation. Returns what did not load as it was; InitError (naming
    `where`) lists every key that does not fit."""
    spec = model.spec
    ours = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    report: dict[str, list[str]] = {"interpolated": [], "resized": [], "left_at_init": []}
    fitted, problems = {}, []
    for key, value in state.items():
        if key not in ours:
            if not key.endswith(("relative_position_index", "attn_mask")):  # timm's buffers, rebuilt by ours
                problems.append(f"unexpected {key} {tuple(value.shape)}")
            continue
        want = ours[key].shape
        if value.shape == want:
            fitted[key] = value
        elif key.endswith("pos_embed") and value.dim() == 3 and value.shape[-1] == want[-1]:
            fitted[key] = _interpolate(value, want[1], prefix=int(spec.class_token))
            report["interpolated"].append(f"{key} {tuple(value.shape)} -> {tuple(want)}")
        elif key.endswith("rel_pos.table") and value.shape[1] == want[1]:
            from ..engine.pretrain import resize_table

            fitted[key] = resize_table(value, want[0])
            report["resized"].append(f"{key} {tuple(value.shape)} -> {tuple(want)}")
        elif key.startswith("head."):
            report["left_at_init"].append(f"{key} {tuple(value.shape)}: the model has {tuple(want)}")
        else:
            problems.append(f"{key}: {tuple(value.shape)} in the checkpoint, {tuple(want)} in the model")
    missing = [k for k in ours if k not in state and k not in buffers and not k.startswith(unset)]
    problems += [f"missing {k} {tuple(ours[k].shape)}" for k in missing]
    if problems:
        raise InitError(f"{where} does not fit this step's model ({len(problems)} keys): " + "; ".join(problems))
    report["left_at_init"] += [k for k in ours if k.startswith(unset) and k not in state and k not in buffers]
    model.load_state_dict({**ours, **fitted})
    return report


def _interpolate(table: torch.Tensor, tokens: int, prefix: int) -> torch.Tensor:
    """A (1, prefix + g^2, C) position embedding resized to `tokens` rows: the grid part bicubic, prefix kept."""
    head, grid = table[:, :prefix], table[:, prefix:]
    old, new = math.isqrt(grid.shape[1]), math.isqrt(tokens - prefix)
    maps = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
    maps = F.interpolate(maps, size=(new, new), mode="bicubic", align_corners=False)
    return torch.cat([head, maps.permute(0, 2, 3, 1).reshape(1, new * new, -1).to(table.dtype)], dim=1)


def describe(report: dict[str, list[str]]) -> str:
    """One line: what did not load as it was (or 'every tensor as it was')."""
    parts = [f"{what.replace('_', ' ')}: {', '.join(keys)}" for what, keys in report.items() if keys]
    return "; ".join(parts) or "every tensor as it was"

