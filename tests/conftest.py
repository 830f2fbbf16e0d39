"""Shared test helpers: small specs, recipe files written on the fly, timm weight mapping."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Optional

import pytest
import torch

from ablab.arch.spec import ArchSpec, Stage

torch.set_num_threads(2)


def assert_every_step_runs(recipe, profile: str, batch: int = 2, img_size: Optional[int] = None) -> None:
    """Every step of `recipe` at `profile` builds and maps a batch (of images or clips) to (batch, classes) logits."""
    from ablab.arch.build import build

    for step in recipe.steps:
        spec = recipe.spec(step.id, profile)
        if img_size is not None:
            spec = ArchSpec.from_dict(spec.to_dict() | {"img_size": img_size})
        with torch.no_grad():
            out = build(spec).eval()(torch.randn(spec.input_shape(batch)))
        assert out.shape == (batch, spec.num_classes), step.id


def tiny_vit(**changes) -> ArchSpec:
    """A 32px ViT small enough to build and run in milliseconds."""
    spec = ArchSpec(stages=(Stage(depth=2, dim=32, heads=2),), img_size=32, patch_size=8, num_classes=10)
    return ArchSpec.from_dict(spec.to_dict() | changes)



TINY_BASE = """\
base:
  spec:
    img_size: 32
    patch_size: 8
    num_classes: 10
    class_token: false
    pool: avg
    stages: [{depth: 2, dim: 32, heads: 2}]
"""  # a one-stage ViT small enough to train in seconds, for recipe fixtures

@pytest.fixture
def write_recipe(tmp_path: Path):
    """Write a recipe from a YAML string (dedented) and return its path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


def to_timm_state(ours: dict[str, torch.Tensor], kind: str, depths: tuple[int, ...] = ()) -> dict[str, torch.Tensor]:
    """Rename our state dict to timm's ViT, Swin, MViTv2 or Hiera key names (Hiera numbers blocks globally)."""
    out = {}
    for key, value in ours.items():
        if kind == "mvit":
            key = re.sub(r"attn\.pool_([qkv])\.op\.", r"attn.pool_\1.", key)
            key = re.sub(r"attn\.pool_([qkv])\.norm\.", r"attn.norm_\1.", key)
            key = key.replace("attn.rel_pos.rel_pos_", "attn.rel_pos_")
            key = re.sub(r"^head\.", "head.fc.", key)
        elif kind == "hiera":
            key = re.sub(r"^stages\.0\.pos_embed$", "pos_embed", key)
            m = re.match(r"^stages\.(\d+)\.blocks\.(\d+)\.(.*)$", key)
            if m:
                index = sum(depths[: int(m.group(1))]) + int(m.group(2))
                key = f"blocks.{index}.{m.group(3)}".replace("shortcut_proj_attn", "proj")
            key = re.sub(r"^norm\.", "head.norm.", key)
            key = re.sub(r"^head\.(weight|bias)$", r"head.fc.\1", key)
        elif kind == "vit":
            key = re.sub(r"^stages\.0\.(cls_token|pos_embed)$", r"\1", key)
            key = re.sub(r"^stages\.0\.blocks\.", "blocks.", key)
        else:
            key = re.sub(r"^stages\.(\d+)\.", r"layers.\1.", key)
            key = key.replace("attn.rel_pos.table", "attn.relative_position_bias_table")
            key = re.sub(r"^head\.", "head.fc.", key)
        out[key] = value
    return out


@pytest.fixture(autouse=True, scope="session")
def _cost_cache(tmp_path_factory):
    """Model costs (ablab.cost.fidelity) cache into a test directory, never the user's home."""
    import os

    os.environ["ABLAB_CACHE"] = str(tmp_path_factory.mktemp("ablab-cache"))
